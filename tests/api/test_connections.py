"""The guarded HTTP protocol (app/api/connections.py) driven byte by byte through a recording transport, with an
ASGI app whose answers the test releases: the cases a real socket cannot time reliably (pipelining, a request
still being answered while the next one arrives)."""

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from app.api.bodies import read_body
from app.api.connections import ConnectionLimits, GuardedHttpProtocol

LIMITS = ConnectionLimits(max_header_bytes=1024, header_timeout_s=0.2, body_timeout_s=0.3, max_connections=2)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)


class _App:
    """Answers 200 once ``release`` is set, without reading the body unless asked to."""

    connection_limits = LIMITS

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _connection(app: _App, state: ServerState | None = None) -> tuple[GuardedHttpProtocol, _Transport]:
    config = Config(app=app, lifespan="off", log_level="warning")
    config.load()
    protocol = GuardedHttpProtocol(config=config, server_state=state or ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


GET = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_a_silent_connection_is_answered_408_and_closed_after_the_header_timeout():
    _, transport = _connection(_App())
    await _until(lambda: transport.closed)
    assert transport.written.startswith(b"HTTP/1.1 408")


async def test_stray_bytes_after_an_answer_start_the_header_deadline():
    protocol, transport = _connection(_App())
    protocol.data_received(GET)
    await _until(lambda: transport.written.count(b"HTTP/1.1 200") == 1)
    protocol.data_received(b"\r\n")  # starts no request, but is not idling either
    await _until(lambda: transport.closed)
    assert transport.written.endswith(b'did not arrive within 0.2 s"}')


async def test_a_body_no_route_reads_ends_the_connection_at_the_body_deadline():
    protocol, transport = _connection(_App())
    protocol.data_received(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\nx")
    await _until(lambda: b"HTTP/1.1 200" in transport.written)
    started = asyncio.get_running_loop().time()
    for _ in range(200):  # the client goes on sending a body nobody reads, which keeps the idle timer off
        if transport.closed:
            break
        protocol.data_received(b"x" * 100)
        await asyncio.sleep(0.05)
    assert transport.closed
    assert asyncio.get_running_loop().time() - started < LIMITS.body_timeout_s + 3
    assert transport.written.count(b"HTTP/1.1 ") == 1  # one answer: nothing more is owed to that request


async def test_the_rest_of_a_body_answered_early_is_read_and_the_connection_serves_on():
    protocol, transport = _connection(_App())
    protocol.data_received(b"POST /v2/models/nope/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    await _until(lambda: transport.written.count(b"HTTP/1.1 200") == 1)
    protocol.data_received(b" " * 99 + GET)
    await _until(lambda: transport.written.count(b"HTTP/1.1 200") == 2)
    assert not transport.closed


async def test_a_pipelined_header_past_the_limit_behind_an_unanswered_request_ends_the_connection():
    app = _App()
    app.release.clear()
    protocol, transport = _connection(app)
    protocol.data_received(GET + b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(64):
        if transport.closed:
            break
        protocol.data_received(b"a" * 4096)
    assert transport.closed
    assert b"431" not in transport.written  # no answer may overtake the one still owed


async def test_a_pipelined_body_is_not_counted_as_the_next_requests_header():
    protocol, transport = _connection(_App())
    post = b"POST /v2/health/live HTTP/1.1\r\nhost: x\r\ncontent-length: 4000\r\n\r\n" + b"x" * 4000
    protocol.data_received(post + b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n")
    protocol.data_received(b"\r\n")
    await _until(lambda: transport.written.count(b"HTTP/1.1 200") == 2)
    assert not transport.closed


async def test_the_connection_cap_answers_one_more_503_and_closes_it():
    state = ServerState()
    held = [_connection(_App(), state) for _ in range(LIMITS.max_connections)]
    _, refused = _connection(_App(), state)
    assert refused.closed
    assert refused.written.startswith(b"HTTP/1.1 503")
    assert b"retry-after: 1" in refused.written
    for protocol, transport in held:
        protocol.connection_lost(None)
        assert transport.written == b""


async def test_an_answer_to_a_whole_request_keeps_the_connection():
    protocol, transport = _connection(_App())
    protocol.data_received(b"POST /v2/models/nope/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
    await _until(lambda: b"HTTP/1.1 200" in transport.written)
    assert b"connection: close" not in transport.written
    assert not transport.closed


class _BodyReader(_App):
    """Reads the body the way the inference route does, then answers 200."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body({}, receive, 1 << 20, LIMITS.body_timeout_s)
        await super().__call__(scope, receive, send)


async def test_a_body_of_which_nothing_comes_is_answered_408_at_the_body_deadline():
    protocol, transport = _connection(_BodyReader())
    started = asyncio.get_running_loop().time()
    protocol.data_received(b"POST /v2/models/digits/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")
    await _until(lambda: transport.closed)
    assert transport.written.startswith(b"HTTP/1.1 408")
    assert b"body did not arrive within 0.3 s" in transport.written
    assert asyncio.get_running_loop().time() - started >= LIMITS.body_timeout_s
