"""The HTTP connections themselves: uvicorn's httptools protocol with the limits a server facing untrusted
clients needs and uvicorn lacks (measured on uvicorn 0.54: silent connections stayed open indefinitely, one
unfinished header grew to 150 MB, and past ~1,000 idle connections the process ran out of file descriptors and
reset every new client).

- ``header_timeout_s``: a request's line and headers must arrive within it, counted from connecting or from the
  request's first byte; else 408 and the connection closes.
- ``max_header_bytes``: a request's line and headers together; past it, 431 and the connection closes.
- ``max_connections``: open connections of this worker; one more is answered 503 and closed at once, kept under
  the process's file descriptor limit so accepting never fails.

The body's size limit and its deadline (``body_timeout_s``) are enforced where bodies are read
(:mod:`app.api.bodies`) once a first part has come; a body of which nothing comes is answered 408 here. Idle
keep-alive connections close after uvicorn's ``timeout_keep_alive``.
Enforced inside the process, so one process serves HTTP (and later gRPC) without a proxy in front.
"""

import asyncio
import contextlib
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.error_responses import error_body

log = logging.getLogger(__name__)

# Descriptors the process needs besides client connections: model files, Redis, logs, metrics files.
_RESERVED_DESCRIPTORS = 256


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 1000


def fit_to_descriptors(max_connections: int) -> int:
    """Raise this process's open-file limit as far as allowed, and return ``max_connections`` lowered to fit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        # Not allowed to (a container's seccomp profile, say): the cap is lowered below instead.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - _RESERVED_DESCRIPTORS)
        log.warning("max_connections lowered from %d to %d: the open-file limit is %d", max_connections, fitted, soft)
        return fitted
    return max_connections


class GuardedHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, with :class:`ConnectionLimits` (the app's ``connection_limits``).

    A connection always runs against a deadline except while a request it sent in full is being answered (that
    is the model's time, bounded by the model's own timeouts) or while it idles between requests (uvicorn's
    keep-alive timeout): from connecting, or from any byte after an answer, until a request's headers are in
    (``header_timeout_s``), and from then until its body is in (``body_timeout_s``, with slack for the app's own
    408 to go out first), whether or not the body is read: the rest of a body answered early is thrown away as it
    comes, within the same deadline. (Closing at once instead would reset the connection under the client while
    it still sends, which can destroy the answer before the client reads it.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits: ConnectionLimits = _limits_of(self.app)
        self._refused = False
        self._reading_headers = True
        self._header_bytes = 0
        self._begun_in_chunk = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            _answer_and_close(transport, 503, "the server has too many open connections; retry shortly")
            return
        super().connection_made(transport)
        self._expect(self.limits.header_timeout_s, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None and self._answered():
            # Any byte after an answer starts the next request's header deadline, even bytes that start no
            # request (a stray CRLF), or one byte at a time would hold the connection open for ever.
            self._reading_headers = True
            self._header_bytes = 0
            self._expect(self.limits.header_timeout_s, self._headers_too_slow)
        self._begun_in_chunk = False
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            # httptools holds an unfinished header whole, so the bytes received since the request began are what
            # it holds. A chunk in which the request began may also carry the previous request's body: it is not
            # counted, which lets a header run at most one read (256 KiB) past the limit.
            if not self._begun_in_chunk:
                self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                self._close_with(431, f"the request line and headers are over the {limit}-byte limit")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._begun_in_chunk = True
        if self._deadline is None:
            self._expect(self.limits.header_timeout_s, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._expect(self.limits.body_timeout_s + _BODY_SLACK_S, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._clear_deadline()
        super().on_message_complete()

    def _answered(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self._answered():
            # Pipelined: the next request's headers wait behind an answer still being computed; its deadline
            # starts once that answer is out (reading stays bounded by the header-size limit meanwhile).
            self._expect(self.limits.header_timeout_s, self._headers_too_slow)
            return
        self._close_with(408, f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s")

    def _body_too_slow(self) -> None:
        # The app answers 408 at body_timeout_s when it reads the body. A body answered before it was read (a 404
        # found before reading) is read on and thrown away, so the connection can carry the next request; one that
        # never ends (a GET declaring a body) ends the connection here, answered already or not.
        self._deadline = None
        if self.cycle is not None and self.cycle.response_complete:
            self.transport.close()
            return
        message = f"the request's body did not arrive within {self.limits.body_timeout_s:g} s"
        if self.cycle is not None and not self.cycle.response_started and not self.transport.is_closing():
            # The app still waits for the body's first bytes, which it reads without a timer of its own (a timer
            # per request cost a tenth of the request path): the answer is this connection's.
            _answer_and_close(self.transport, 408, message)
            return
        self._close_with(408, message)

    def _close_with(self, status: int, message: str) -> None:
        self._clear_deadline()
        if self._answered():
            _answer_and_close(self.transport, status, message)
        else:
            # An earlier request on this connection is still being answered: no answer can go out before it, and
            # reading on would let this one grow; the connection ends here.
            self.transport.close()

    def _expect(self, seconds: float, expired: Callable[[], None]) -> None:
        self._clear_deadline()
        self._deadline = self.loop.call_later(seconds, expired)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


_BODY_SLACK_S = 2.0
"""How much longer than ``body_timeout_s`` the connection waits for a body, so the app's 408 goes out first."""

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _answer_and_close(transport: asyncio.Transport, status: int, message: str) -> None:
    if transport.is_closing():
        return
    body = error_body(message)
    head = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *([b"retry-after: 1"] if status == 503 else []),
    ]
    transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    transport.close()


def _limits_of(app: Any) -> ConnectionLimits:
    """The limits the Servometer app carries, under whatever middleware uvicorn wrapped it in."""
    for _ in range(8):
        limits = getattr(app, "connection_limits", None)
        if isinstance(limits, ConnectionLimits):
            return limits
        app = getattr(app, "app", None)
    return ConnectionLimits()
