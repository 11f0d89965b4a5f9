"""``POST /v2/models/{model}[/versions/{version}]/infer``: JSON or binary tensors in, the same out.

Answered as plain ASGI before FastAPI's stack sees the request (see :class:`app.main.ServometerApp`): on one
core, FastAPI's routing, dependency injection and middleware cost several times more than decoding, batching
and encoding a small request together (profiled: about 80% of the event loop). The body is read raw so tensors
go straight into numpy. The route is described in the OpenAPI document by :mod:`app.api.openapi`.
"""

import asyncio
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from app.api.errors import error_body
from app.api.security import SECURITY_HEADERS
from app.context import AppContext
from app.errors import InvalidRequest, PayloadTooLarge, ServingError, UnsupportedEncoding
from app.protocol import compression
from app.protocol.codec import HEADER_LENGTH, decode_request, encode_response
from app.protocol.schemas import ParameterValue
from app.routing.router import ROUTING_KEY_HEADER

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_MEDIA_TYPES = {"application/json", "application/octet-stream"}
WATCH_AFTER_S = 0.02


def match_infer(scope: Scope) -> re.Match[str] | None:
    """The model / version of a request on an inference path (any method), or None for any other request."""
    if scope["type"] != "http":
        return None
    return INFER_PATH.match(scope["path"])


class InferenceEndpoint:
    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.disconnects = DisconnectWatch()

    async def __call__(self, match: re.Match[str], scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if scope["method"] != "POST":
            message = f"{scope['method']} is not allowed on an inference path; send the request with POST"
            status, response_headers, body = (
                405,
                {"content-type": "application/json", "allow": "POST"},
                error_body(message),
            )
        else:
            status, response_headers, body = await self.respond(match[1], match[2], headers, receive)
        raw_headers = [(name.encode(), value.encode()) for name, value in response_headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        raw_headers.extend(SECURITY_HEADERS)
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def respond(
        self, model: str, version: str | None, headers: dict[str, str], receive: Receive
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one inference request; every failure becomes ``{"error": ...}``."""
        try:
            return await self._infer(model, version, headers, receive)
        except ServingError as exc:
            return exc.status, {"content-type": "application/json", **exc.headers}, error_body(exc.message)
        except Exception:  # a bug must cost one request a 500, never the connection or the server
            log.exception("inference request for model '%s' failed unexpectedly", model)
            return 500, {"content-type": "application/json"}, error_body("internal server error")

    async def _infer(
        self, model: str, version: str | None, headers: dict[str, str], receive: Receive
    ) -> tuple[int, dict[str, str], bytes]:
        context = self.context
        started = time.perf_counter()
        variant = context.service.resolve(model, version, headers.get(ROUTING_KEY_HEADER))
        metrics = context.metrics.for_variant(variant.model_name, variant.name)
        metrics.in_flight += 1
        outcome = "server_error"
        try:
            body = await read_body(headers, receive, context.settings.max_request_bytes)
            decoded = decode_request(body, _header_length(headers))
            watched = self.disconnects.track(receive)
            try:
                result = await context.service.infer(
                    variant, decoded, watched.gone, _cache_allowed(headers), routed=version is None
                )
            finally:
                self.disconnects.untrack(watched)
            parameters: dict[str, ParameterValue] = {"variant": variant.name}
            if result.response_id is not None:
                parameters["response_id"] = result.response_id
            encoded = encode_response(
                model_name=variant.model_name,
                model_version=str(variant.version),
                request_id=decoded.id,
                outputs=result.outputs,
                parameters=parameters,
            )
            response_headers = {**encoded.headers, "servometer-variant": variant.name, "servometer-cache": result.cache}
            if result.response_id is not None and "," not in result.response_id:
                # One id per sample would make a header of kilobytes for a large batch, past what proxies and
                # clients accept: several ids travel in parameters.response_id only.
                response_headers["servometer-response-id"] = result.response_id
            content = encoded.body
            encoding = compression.choose_encoding(headers.get("accept-encoding"))
            if encoding:
                content = compression.compress(content, encoding)
                response_headers["content-encoding"] = encoding
            outcome = "success"
            return 200, response_headers, content
        except ServingError as exc:
            outcome = exc.outcome
            raise
        finally:
            metrics.in_flight -= 1
            metrics.observe_request(outcome, time.perf_counter() - started)


async def read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    """The request body after Content-Encoding, refused with 413 as soon as it passes ``limit`` bytes."""
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _MEDIA_TYPES:
        raise UnsupportedEncoding(
            f"Content-Type '{media_type}' is not supported; send application/json or application/octet-stream"
        )
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return compression.decompress(body, headers.get("content-encoding"), limit)


@dataclass(eq=False, slots=True)
class _Watched:
    receive: Receive
    gone: asyncio.Future[None]
    since: float
    task: asyncio.Task[None] | None = None


class DisconnectWatch:
    """Tells the batcher when a waiting client hangs up, so its request is dropped before compute.

    Watching one request takes a task blocked on ``receive``; that would cost every request, so a sweeper starts
    watchers only for requests still unanswered after ``WATCH_AFTER_S``: the ones that may sit in a queue.
    """

    def __init__(self) -> None:
        self._watched: set[_Watched] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def track(self, receive: Receive) -> _Watched:
        loop = asyncio.get_running_loop()
        if self._sweeper is None:  # started by some request: not in that request's context (its X-Request-Id)
            self._sweeper = loop.create_task(self._sweep(), context=contextvars.Context())
        watched = _Watched(receive, loop.create_future(), loop.time())
        self._watched.add(watched)
        return watched

    def untrack(self, watched: _Watched) -> None:
        self._watched.discard(watched)
        if watched.task is not None:
            watched.task.cancel()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_AFTER_S)
            due = loop.time() - WATCH_AFTER_S
            for watched in self._watched:
                if watched.task is None and watched.since <= due:
                    watched.task = loop.create_task(_wait_for_disconnect(watched))

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()


async def _wait_for_disconnect(watched: _Watched) -> None:
    # With the body read, the next ASGI message can only be the disconnect.
    message = await watched.receive()
    while message["type"] != "http.disconnect":
        message = await watched.receive()
    if not watched.gone.done():
        watched.gone.set_result(None)


def _cache_allowed(headers: dict[str, str]) -> bool:
    """``Cache-Control: no-cache`` (or ``no-store``) asks for a fresh answer from the model."""
    directives = headers.get("cache-control", "").lower()
    return "no-cache" not in directives and "no-store" not in directives


def _header_length(headers: dict[str, str]) -> int | None:
    value = headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidRequest(f"Inference-Header-Content-Length must be a non-negative integer, got '{value}'")
    return int(value)
