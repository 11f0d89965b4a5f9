"""The event loop's lag, measured from another thread, and the stack dump when the loop stalls."""

import asyncio
import time

from app.telemetry.loop_lag import LoopWatch
from app.telemetry.metrics import Metrics
from tests.helpers import run_in_own_loop


def _lag(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("servometer_event_loop_lag_seconds")
    assert value is not None
    return value


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # what a long call made on the event loop does to every request


def test_a_stalled_loop_shows_in_the_lag_and_every_threads_stack_is_dumped_once(tmp_path):
    metrics = Metrics()
    dump = tmp_path / "stacks.txt"

    async def scenario() -> tuple[list[float], float]:
        with dump.open("w") as dump_to:
            watch = LoopWatch(metrics.loop_lag, interval_s=0.02, stall_s=0.3, dump_to=dump_to)
            watch.start(asyncio.get_running_loop())
            await asyncio.sleep(0.2)
            calm = _lag(metrics)
            hold_the_loop_for(1.0)
            during = _lag(metrics)  # set by the watching thread while the loop could not run
            seen = [calm, during]
            deadline = time.monotonic() + 30
            while _lag(metrics) > 0.2:  # once the loop turns again, the next sample is small
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            watch.stop()
            return seen, _lag(metrics)

    (calm, during), after = run_in_own_loop(scenario, timeout=60)
    assert calm < 0.2
    assert during >= 0.3
    assert after < 0.2
    stacks = dump.read_text()
    assert stacks.count("hold_the_loop_for") == 1, stacks  # the stalled thread, caught where it hangs, once
    assert "Thread 0x" in stacks


def test_the_stack_dump_can_be_turned_off(tmp_path):
    metrics = Metrics()
    dump = tmp_path / "stacks.txt"

    async def scenario() -> None:
        with dump.open("w") as dump_to:
            watch = LoopWatch(metrics.loop_lag, interval_s=0.02, stall_s=0, dump_to=dump_to)
            watch.start(asyncio.get_running_loop())
            await asyncio.sleep(0.05)
            hold_the_loop_for(0.5)
            await asyncio.sleep(0.05)
            watch.stop()

    run_in_own_loop(scenario, timeout=60)
    assert dump.read_text() == ""
