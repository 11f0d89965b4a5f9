"""Graceful shutdown on SIGTERM / SIGINT: readiness turns false at once, uvicorn stops accepting connections and
lets admitted requests finish within ``drain_timeout_s``, the batchers drain what is queued within what is left of
that deadline, and the process exits 0.

uvicorn (0.54) re-raises the signal it caught once it has shut down, so a clean drain would still end as "killed
by SIGTERM" (exit -15): :class:`DrainingServer` keeps the graceful part and drops the re-raise.
"""

import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

_listeners: list[Callable[[], None]] = []
_deadline: float | None = None


def on_drain(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` when draining starts; returns a function that unregisters it."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback)


def begin_drain(timeout_s: float) -> None:
    global _deadline
    if _deadline is None:
        _deadline = time.monotonic() + timeout_s
    for callback in list(_listeners):
        callback()


def remaining(timeout_s: float) -> float:
    """Seconds left of the drain deadline (``timeout_s`` when no signal started one)."""
    return timeout_s if _deadline is None else max(0.0, _deadline - time.monotonic())


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            begin_drain(self.drain_timeout_s)
        super().handle_exit(sig, frame)
        # The shutdown this starts is the graceful exit: do not die by the signal afterwards.
        self._captured_signals.clear()
