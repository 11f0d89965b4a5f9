"""Reading request bodies within bounds: every route that reads one stops at a size limit and a deadline, so no
client can make the server hold an unbounded body or wait on a stalled upload."""

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.errors import InvalidRequest, PayloadTooLarge, RequestTimeout

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

CONTROL_BODY_BYTES = 1024 * 1024
"""Bodies of every route but inference (feedback, model management) are small JSON documents."""

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def read_body(headers: dict[str, str], receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes (or declares more) and with 408 when
    it has not fully arrived within ``timeout_s``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    # A small body has usually come with the headers, and the first receive answers at once: only a body still
    # arriving is read against a deadline (a timer per request was a tenth of the request path's own work).
    message = await receive()
    first = _chunk(message, 0, limit)
    if not message.get("more_body", False):
        return first
    chunks = [first]
    received = len(first)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                chunk = _chunk(message, received, limit)
                received += len(chunk)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s ({received} bytes came)"
        ) from None
    return b"".join(chunks)


def _chunk(message: Message, received: int, limit: int) -> bytes:
    """The body bytes of one ``receive`` message, refused once the body so far passes ``limit``."""
    if message["type"] == "http.disconnect":
        raise InvalidRequest("the client disconnected before sending the whole body")
    chunk: bytes = message.get("body", b"")
    if received + len(chunk) > limit:
        raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
    return chunk


async def buffered(scope: MutableMapping[str, Any], receive: Receive, timeout_s: float) -> Receive:
    """For routes other than inference: the body read within :data:`CONTROL_BODY_BYTES` and ``timeout_s``
    before the route runs, handed on by a ``receive`` that replays it (then waits for the disconnect)."""
    if scope["method"] not in _BODY_METHODS:
        return receive
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    body = await read_body(headers, receive, CONTROL_BODY_BYTES, timeout_s)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
