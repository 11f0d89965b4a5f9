"""The event loop's lag, measured from a thread of its own, and a stack dump of every thread when the loop stalls.

Every request, health probe and scrape of a worker runs on one event loop, so anything that holds it (a long call
made on the loop, a loop that never awaits) stalls them all at once. Measured from inside the loop, a stall
could not be seen: the measuring code would not run either. So a thread schedules a callback on the loop every
``interval_s`` and times how long it takes to run. If it has not run after ``stall_s``, the thread logs the stack
of every thread once (faulthandler), which shows where the loop hangs.
"""

import asyncio
import contextlib
import faulthandler
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

log = logging.getLogger(__name__)


class LoopWatch:
    def __init__(self, gauge: Any, interval_s: float, stall_s: float, dump_to: TextIO) -> None:
        """``gauge``: where each lag is set (seconds); ``stall_s`` 0: never dump stacks; ``dump_to``: a file with
        a descriptor (faulthandler writes to it directly, without the interpreter's help)."""
        self._gauge = gauge
        self._interval_s = interval_s
        self._stall_s = stall_s
        self._dump_to = dump_to
        self._stopped = threading.Event()
        self._waiting_for: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Watch ``loop`` for the duration of the block, however it ends."""
        self.start(loop)
        try:
            yield
        finally:
            self.stop()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._thread = threading.Thread(target=self._watch, args=(loop,), name="servometer-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Called from the loop itself at shutdown: wakes the thread rather than let it wait for the loop."""
        self._stopped.set()
        waiting_for = self._waiting_for
        if waiting_for is not None:
            waiting_for.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stopped.wait(self._interval_s):
            ran = self._waiting_for = threading.Event()
            ran_at: list[float] = []
            sent = time.monotonic()
            try:
                loop.call_soon_threadsafe(_answer, ran, ran_at)
            except RuntimeError:  # the loop is closed: the server is gone
                return
            self._wait_for(ran, sent)
            if ran_at and not self._stopped.is_set():
                self._gauge.set(ran_at[0] - sent)

    def _wait_for(self, ran: threading.Event, sent: float) -> None:
        dumped = False
        while not ran.wait(self._interval_s):
            if self._stopped.is_set():
                return
            # Still waiting: the lag so far, so a scrape answered by another worker sees this one stalling.
            lag = time.monotonic() - sent
            self._gauge.set(lag)
            if self._stall_s and lag >= self._stall_s and not dumped:
                dumped = True
                log.error("the event loop has not run for %.1f s; the stack of every thread follows", lag)
                try:
                    faulthandler.dump_traceback(file=self._dump_to, all_threads=True)
                except (OSError, ValueError) as exc:  # a stream without a file descriptor: say so, keep watching
                    log.error("cannot write the stacks to %r: %s", self._dump_to, exc)
        if dumped:
            log.error("the event loop runs again after %.1f s", time.monotonic() - sent)


def _answer(ran: threading.Event, ran_at: list[float]) -> None:
    """Runs on the loop: notes when, before the watching thread gets round to reading it."""
    ran_at.append(time.monotonic())
    ran.set()
