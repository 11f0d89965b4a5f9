"""The API keys' check at the door of every HTTP request (who may call what: :mod:`app.keys`), and the headers
every response carries."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.api.error_responses import OPENAI_PREFIX, error_body, openai_error_body
from app.keys import bearer_token

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


def bearer(scope: Scope) -> bytes | None:
    """The request's API key, from its ``Authorization`` header."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bearer_token(value)
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
