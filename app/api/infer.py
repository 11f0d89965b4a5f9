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
from typing import Any

import numpy as np

from app.api.bodies import read_body
from app.api.error_responses import error_body
from app.api.security import SECURITY_HEADERS
from app.context import AppContext
from app.errors import InvalidRequest, ServingError, UnsupportedEncoding
from app.protocol import compression
from app.protocol.codec import HEADER_LENGTH, DecodedRequest, decode_request, encode_response
from app.protocol.schemas import ParameterValue
from app.repository.registry import Variant
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
            headers = {"content-type": "application/json", **exc.headers}
            if exc.status in (408, 413):  # the body was not read to its end: the connection cannot carry another
                headers["connection"] = "close"
            return exc.status, headers, error_body(exc.message)
        except Exception:  # a bug must cost one request a 500, never the connection or the server
            log.exception("inference request for model '%s' failed unexpectedly", model)
            return 500, {"content-type": "application/json"}, error_body("internal server error")

    async def _infer(
        self, model: str, version: str | None, headers: dict[str, str], receive: Receive
    ) -> tuple[int, dict[str, str], bytes]:
        context = self.context
        started = time.perf_counter()
        settings = context.settings
        variant = context.service.resolve(model, version, headers.get(ROUTING_KEY_HEADER))
        metrics = context.metrics.for_variant(variant.model_name, variant.name)
        outcome = "server_error"
        in_flight = False
        try:
            _check_media_type(headers)
            body = await read_body(headers, receive, settings.max_request_bytes, settings.body_timeout_s)
            body = compression.decompress(body, headers.get("content-encoding"), settings.max_request_bytes)
            # In flight (KEDA scales on it) once the body is here: a stalled upload is no work for the server.
            metrics.request_received()
            in_flight = True
            decoded = decode_request(body, _header_length(headers), context.service.value_budget(variant))
            del body  # a JSON body is no longer needed once parsed: freed before the wait for the model
            status, response_headers, content = await self._answer(variant, decoded, headers, receive, version)
            outcome = "success"
            return status, response_headers, content
        except ServingError as exc:
            outcome = exc.outcome
            raise
        finally:
            if in_flight:
                metrics.request_done()
            metrics.observe_request(outcome, time.perf_counter() - started)

    async def _answer(
        self, variant: Variant, decoded: DecodedRequest, headers: dict[str, str], receive: Receive, version: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        context = self.context
        watched = self.disconnects.track(receive)
        try:
            result = await context.service.infer(variant, decoded, watched, _cache_allowed(headers), version is None)
        finally:
            self.disconnects.untrack(watched)
        _check_response_size(result.outputs, context.settings.max_response_bytes)
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
        return 200, response_headers, content


def _check_media_type(headers: dict[str, str]) -> None:
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _MEDIA_TYPES:
        raise UnsupportedEncoding(
            f"Content-Type '{media_type}' is not supported; send application/json or application/octet-stream"
        )


# A float32 written as JSON text takes up to ~16 bytes with its comma; 24 leaves room for wider types.
_JSON_BYTES_PER_VALUE = 24


def _encoded_size(array: np.ndarray, as_binary: bool) -> int:
    if array.dtype == np.object_:  # BYTES: the strings' own lengths, plus a length prefix or quotes each
        return sum(len(item) for item in array.flat) + 4 * array.size
    return array.nbytes if as_binary else array.size * _JSON_BYTES_PER_VALUE


def _check_response_size(outputs: list[tuple[str, np.ndarray, bool]], limit: int) -> None:
    """Refuse, before encoding, a response estimated over ``limit`` bytes."""
    estimate = sum(_encoded_size(array, as_binary) for _, array, as_binary in outputs)
    if estimate > limit:
        raise InvalidRequest(
            f"the response would take about {estimate} bytes, over the {limit}-byte limit (max_response_bytes); "
            "ask for fewer samples or outputs, or for binary outputs"
        )


class _Watched:
    """One request that may be watched for its client hanging up (:class:`app.service.Hangup`)."""

    __slots__ = ("receive", "since", "task", "callback")

    def __init__(self, receive: Receive, since: float) -> None:
        self.receive = receive
        self.since = since
        self.task: asyncio.Task[None] | None = None
        self.callback: Callable[[], None] | None = None

    def on_hangup(self, callback: Callable[[], None]) -> None:
        self.callback = callback


class DisconnectWatch:
    """Tells the batcher when a waiting client hangs up, so its request is dropped before compute.

    Watching one request takes a task blocked on ``receive``; that would cost every request, so a sweeper starts
    watchers only for requests still unanswered after ``WATCH_AFTER_S``: the ones that may sit in a queue. Until
    then a request costs a small object and a set entry (a future per request was 5% of the request path).
    """

    def __init__(self) -> None:
        self._watched: set[_Watched] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def track(self, receive: Receive) -> _Watched:
        loop = self._loop
        if loop is None:  # started by some request: not in that request's context (its X-Request-Id)
            loop = self._loop = asyncio.get_running_loop()
            self._sweeper = loop.create_task(self._sweep(), context=contextvars.Context())
        watched = _Watched(receive, loop.time())
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
    callback, watched.callback = watched.callback, None
    if callback is not None:
        callback()


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
