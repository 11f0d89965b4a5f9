"""``GET /metrics`` in the Prometheus text format: on the API's port, or with ``metrics_port`` set, only on a port of
its own (so the API can be exposed while metrics stay on an internal network), with the live page beside it."""

import asyncio
import contextlib
import logging
from http import HTTPStatus
from urllib.parse import unquote

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ContextDep
from app.api.security import SECURITY_HEADERS
from app.context import AppContext
from app.errors import NotFound
from app.live.pages import is_page_path

log = logging.getLogger(__name__)
METRICS_PORT_CONNECTIONS = 64
router = APIRouter(tags=["telemetry"])


def exposition(context: AppContext) -> bytes:
    body = context.metrics.render()
    if context.settings.triton_gpu_metrics:
        body += context.gpus.triton_lines()
    return body


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: ContextDep) -> Response:
    if context.settings.metrics_port is not None:
        raise NotFound(f"metrics are served on port {context.settings.metrics_port}, not on the API's port")
    return Response(exposition(context), media_type=CONTENT_TYPE_LATEST)


async def serve_metrics_port(context: AppContext) -> asyncio.Server:
    """A minimal HTTP/1.1 listener answering ``GET /metrics`` and the live page (one request per connection) on
    ``metrics_port``: an internal port, so no keys are asked for."""

    open_connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections
        if open_connections >= METRICS_PORT_CONNECTIONS:  # scrapers are few; anything past them is refused
            writer.close()
            return
        open_connections += 1
        try:
            await _answer(reader, writer)
        finally:
            open_connections -= 1
            writer.close()

    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Headers over the reader's 64 KiB limit, or slower than 10 s, and answers not read within 10 s end it.
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, *_ = head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""]
            raw_path, _, query = target.decode("latin-1").partition("?")
            path = unquote(raw_path)  # as the API's port decodes it: a model name the page escaped is found
            extra = b""
            if method == b"GET" and path == "/metrics":
                status, body, kind = b"200 OK", exposition(context), CONTENT_TYPE_LATEST.encode()
            elif method == b"GET" and context.live is not None and is_page_path(path):
                reply = await context.live.answer(path, query)
                status = f"{reply.status} {HTTPStatus(reply.status).phrase}".encode()
                body, kind = reply.body, reply.content_type.encode()
                extra = b"".join(f"{name}: {value}\r\n".encode() for name, value in reply.headers.items())
                extra += b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS)
            else:
                status, kind = b"404 Not Found", b"text/plain"
                body = b"only GET /metrics and the live page are served here\n"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: " + kind + b"\r\ncontent-length: "
                + str(len(body)).encode() + b"\r\n" + extra + b"connection: close\r\n\r\n" + body
            )  # fmt: skip
            await asyncio.wait_for(writer.drain(), timeout=10)

    settings = context.settings
    assert settings.metrics_port is not None
    server = await asyncio.start_server(answer, settings.host, settings.metrics_port)
    log.info("metrics served on http://%s:%d/metrics", settings.host, settings.metrics_port)
    return server
