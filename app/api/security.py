"""Who may call what, and the headers every response carries.

Inference and model routes (``/v2/models...``) need one of ``api_keys`` when any is configured; the model
repository (management) routes (``/v2/repository...``) exist only when ``management_api_key`` is set and always need
that key. Health, server metadata, ``/metrics`` and the API docs stay open: probes and scrapers carry no secrets.
Keys travel as ``Authorization: Bearer <key>`` and are compared in constant time.
"""

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from enum import Enum
from typing import Any

from app.api.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Sent with every response: no MIME sniffing, no framing, no referrer leaks, no caching of answers by proxies.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Access(Enum):
    PUBLIC = "public"
    INFERENCE = "inference"
    MANAGEMENT = "management"


def access_for(path: str) -> Access:
    if path.startswith("/v2/repository"):
        return Access.MANAGEMENT
    if path.startswith("/v2/models"):
        return Access.INFERENCE
    return Access.PUBLIC


class KeyCheck:
    def __init__(self, api_keys: list[str], management_key: str | None) -> None:
        self._inference = [key.encode() for key in api_keys]
        self._management = management_key.encode() if management_key else None

    @property
    def enabled(self) -> bool:
        return bool(self._inference) or self._management is not None

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """``(status, message)`` when the request may not proceed, else None."""
        access = access_for(scope["path"])
        if access is Access.PUBLIC:
            return None
        if access is Access.MANAGEMENT and self._management is None:
            return 404, "the model management API is off (set SERVOMETER_MANAGEMENT_API_KEY to enable it)"
        if access is Access.INFERENCE and not self._inference:
            return None
        presented = _bearer(scope)
        if presented is None:
            return 401, "this route needs an API key: send 'Authorization: Bearer <key>'"
        management = self._management is not None and hmac.compare_digest(presented, self._management)
        # Every key is compared, so the time taken does not tell which key came close.
        inference = [hmac.compare_digest(presented, key) for key in self._inference]
        if management or (access is Access.INFERENCE and any(inference)):
            return None
        if any(inference):
            return 403, "this key may call inference routes only; the management API needs its own key"
        return 401, "the API key is not valid"


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


async def refuse(send: Send, status: int, message: str) -> None:
    headers = [(b"content-type", b"application/json"), *SECURITY_HEADERS]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="servometer"'))
    body = error_body(message)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending
