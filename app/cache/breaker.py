"""A circuit breaker for the cache backend: after repeated failures it stops calling the backend, then lets
one probe through after a back-off that doubles while the backend keeps failing."""

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """Exported as a gauge: 0 closed (calls flow), 1 half-open (one probe), 2 open (no calls)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failures_to_open: int,
        reset_s: float,
        max_reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.reset_s = reset_s
        self.max_reset_s = max_reset_s
        self._clock = clock
        self._failures = 0
        self._backoff = reset_s
        self._open_until = 0.0
        self.state = BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether to call the backend now. When open and the back-off has passed, one probe goes through."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self._clock() >= self._open_until:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._backoff = self.reset_s
        self.state = BreakerState.CLOSED

    def failure(self) -> None:
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._backoff = min(self._backoff * 2, self.max_reset_s)
            self._open()
        elif self._failures >= self.failures_to_open:
            self._open()

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self._open_until = self._clock() + self._backoff
