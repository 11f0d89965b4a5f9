"""Who may call what, and the headers every response carries.

Deny by default: with ``api_keys`` set, every route needs a key, except the health probes (``/v2/health/live``,
``/v2/health/ready``: probes carry no secrets) and the paths the operator opens with ``public_paths`` (``/metrics``
and the API docs unless told otherwise). So a route added later is covered without anyone remembering to.
The model repository (management) routes (``/v2/repository...``) exist only when ``management_api_key`` is set
and always need that key; feedback needs ``feedback_api_key`` when that is set (each guards its own routes only,
so setting one alone leaves the API open); everything else takes any of ``api_keys`` (or the management key).
Keys travel as ``Authorization: Bearer <key>`` and are compared in constant time.
"""

import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from enum import Enum
from typing import Any

from app.api.error_responses import OPENAI_PREFIX, error_body, openai_error_body

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


PROBES = ("/v2/health/live", "/v2/health/ready")
_FEEDBACK_PATH = re.compile(r"^/v2/models/[^/]+/feedback$")


class Access(Enum):
    PUBLIC = "public"
    API = "api"
    FEEDBACK = "feedback"
    MANAGEMENT = "management"


class KeyCheck:
    def __init__(
        self,
        api_keys: list[str],
        management_key: str | None,
        feedback_key: str | None = None,
        public_paths: Sequence[str] = (),
    ) -> None:
        self._api = [key.encode() for key in api_keys]
        self._management = management_key.encode() if management_key else None
        self._feedback = feedback_key.encode() if feedback_key else None
        self._keys = [*self._api, *([self._feedback] if self._feedback else [])]
        self._public = tuple(path.rstrip("/") for path in public_paths)

    @property
    def enabled(self) -> bool:
        return bool(self._api) or self._management is not None or self._feedback is not None

    def access_for(self, path: str) -> Access:
        if path.startswith("/v2/repository"):
            return Access.MANAGEMENT
        if path in PROBES or any(path == open_ or path.startswith(open_ + "/") for open_ in self._public):
            return Access.PUBLIC
        if _FEEDBACK_PATH.match(path):
            return Access.FEEDBACK
        return Access.API

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """``(status, message)`` when the request may not proceed, else None."""
        access = self.access_for(scope["path"])
        if access is Access.PUBLIC:
            return None
        if access is Access.MANAGEMENT:
            if self._management is None:
                return 404, "the model management API is off (set SERVOMETER_MANAGEMENT_API_KEY to enable it)"
            return self._check(scope, [], "the management API needs its own key")
        if access is Access.FEEDBACK and self._feedback is not None:
            return self._check(scope, [self._feedback], "feedback needs the feedback key (SERVOMETER_FEEDBACK_API_KEY)")
        if not self._api:  # no API keys: the API is open (management and feedback keys guard only their routes)
            return None
        return self._check(scope, self._api, "it needs an API key")

    def _check(self, scope: Scope, accepted: list[bytes], needs: str) -> tuple[int, str] | None:
        """Whether the request's key is the management key or one of ``accepted``: 401 without a known key, 403
        with a key known for other routes."""
        presented = _bearer(scope)
        if presented is None:
            return 401, "this route needs an API key: send 'Authorization: Bearer <key>'"
        # Every key is compared, so the time taken does not tell which key came close.
        management = self._management is not None and hmac.compare_digest(presented, self._management)
        matches = [hmac.compare_digest(presented, key) for key in accepted]
        if management or any(matches):
            return None
        known = [hmac.compare_digest(presented, key) for key in self._keys]
        if any(known):
            return 403, f"this key may not call this route: {needs}"
        return 401, "the API key is not valid"


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


async def refuse(send: Send, status: int, message: str, path: str = "") -> None:
    """Answer ``status`` with ``message`` in the error shape of the route ``path`` is on (OpenAI's on ``/v1/``)."""
    headers = [(b"content-type", b"application/json"), *SECURITY_HEADERS]
    if status in (408, 413):  # the body was not read to its end: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="servometer"'))
    body = openai_error_body(status, message) if path.startswith(OPENAI_PREFIX) else error_body(message)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending
