from app.cache.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_probes_after_the_back_off():
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, reset_s=1.0, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()  # one probe
    assert breaker.state.name == "HALF_OPEN"
    assert not breaker.allow()  # and only one
    breaker.success()
    assert breaker.state.name == "CLOSED"


def test_a_failed_probe_doubles_the_back_off_up_to_the_maximum():
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=1, reset_s=1.0, max_reset_s=3.0, clock=clock)
    breaker.failure()
    waits = []
    for _ in range(3):
        opened = clock.now
        while not breaker.allow():
            clock.now += 0.25
        waits.append(clock.now - opened)
        breaker.failure()  # the probe fails
    assert waits == [1.0, 2.0, 3.0]


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker(failures_to_open=2, reset_s=1.0, clock=Clock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED
