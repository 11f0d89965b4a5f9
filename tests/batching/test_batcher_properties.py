"""The batcher's invariants over generated settings and request streams (hypothesis).

Whatever the batching settings (max size, delay, preferred sizes, priority levels, instances, queue limits, inline
calls) and whatever arrives (sizes, sequence lengths, priorities, timeouts, disconnects, cancellations):

- every admitted request completes exactly once, with its own rows, within its timeout or the delay bound;
- no model call is empty or over ``max_batch_size``;
- the queue's counters return to zero;
- the event loop never stalls, and one turn of it never runs more than one model call.
"""

import asyncio
import gc
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.batching.batcher import DynamicBatcher
from app.batching.pending import PendingRequest
from app.errors import ClientGone, Overloaded, QueueTimeout
from app.processing.pipeline import Pipeline
from app.runtimes.base import TensorInfo
from app.schema.manifest import BatchingSpec
from app.telemetry.metrics import Metrics
from tests.helpers import run_in_own_loop

# Generous on purpose: the suite must pass with both cores busy, and these bounds catch hangs, not slowness.
SLACK_S = 2.0
LOOP_TURN_OVERHEAD_S = 0.05
STALL_S = 15.0


class RowRuntime:
    """A model whose output row i depends only on input row i (its sum), so an answer holding a companion's rows
    shows. Each call burns ``seconds`` of CPU on the calling thread, as a real model would."""

    platform = "fake"
    device = "cpu"
    threads = 1

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[int] = []
        self.on_loop = 0
        """Calls made on the event loop's thread (inline), for the heartbeat to count per loop turn."""
        self.loop_thread: int | None = None

    def inputs(self) -> list[TensorInfo]:
        return [TensorInfo("x", "FP32", (None, None))]

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo("y", "FP32", (None,))]

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.calls.append(len(x))
        if threading.get_ident() == self.loop_thread:
            self.on_loop += 1
        until = time.thread_time() + self.seconds
        while time.thread_time() < until:
            pass
        return {"y": x.sum(axis=1)}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Arrival:
    after_ms: float
    samples: int
    width: int
    """The non-batch dimension: requests of different widths never share a call."""
    level: int
    timeout_ms: float | None
    cancel_after_ms: float | None
    disconnect_after_ms: float | None


@st.composite
def batching_specs(draw: st.DrawFn) -> BatchingSpec:
    max_batch = draw(st.integers(0, 16))
    preferred = draw(st.lists(st.integers(1, max_batch), unique=True, max_size=3)) if max_batch > 1 else []
    levels = draw(st.integers(1, 3))
    per_level = draw(st.dictionaries(st.integers(1, levels), st.integers(1, 8), max_size=levels))
    return BatchingSpec(
        max_batch_size=max_batch,
        max_queue_delay_ms=draw(st.sampled_from([0.0, 0.5, 2.0, 5.0])),
        adaptive_delay=draw(st.booleans()),
        preferred_batch_sizes=sorted(preferred),
        max_queue_size=draw(st.integers(1, 64)),
        instances=draw(st.integers(1, 3)),
        priority_levels=levels,
        default_priority_level=draw(st.integers(1, levels)),
        max_queue_size_per_level=per_level,
        inline_compute_below_ms=draw(st.sampled_from([0.0, 0.25, 5.0])),
    )


def arrivals(spec: BatchingSpec) -> st.SearchStrategy[list[Arrival]]:
    largest = spec.max_batch_size if spec.enabled else 4
    optional_ms = st.none() | st.floats(0, 20)
    arrival = st.builds(
        Arrival,
        after_ms=st.floats(0, 3),
        samples=st.integers(1, largest),
        width=st.sampled_from([2, 3]),
        level=st.integers(1, spec.priority_levels),
        timeout_ms=st.none() | st.floats(0.1, 30),
        cancel_after_ms=optional_ms,
        disconnect_after_ms=optional_ms,
    )
    return st.lists(arrival, min_size=1, max_size=40)


@dataclass
class Outcome:
    arrival: Arrival
    inputs: np.ndarray
    submitted_at: float
    finished_at: float = 0.0
    completions: int = 0
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    rejected: int = 0
    longest_turn_cpu_s: float = 0.0
    most_calls_in_one_turn: int = 0
    loop_errors: list[str] = field(default_factory=list)
    depth_after: int = -1
    samples_after: int = -1
    level_counts_after: list[int] = field(default_factory=list)
    busy_after: int = -1
    gauge_after: float | None = None


async def _exercise(spec: BatchingSpec, stream: list[Arrival], runtime: RowRuntime) -> Run:
    loop = asyncio.get_running_loop()
    run = Run()
    loop.set_exception_handler(lambda _, context: run.loop_errors.append(str(context.get("message"))))
    metrics = Metrics()
    batcher = DynamicBatcher("model 'rows' variant 'v'", Pipeline(runtime), spec, metrics.for_variant("rows", "v"))
    batcher.start()
    stop = asyncio.Event()

    runtime.loop_thread = threading.get_ident()

    async def heartbeat() -> None:
        # Runs once per turn of the loop: what happened between two of its runs is one turn of everything else.
        while not stop.is_set():
            before, calls_before = time.thread_time(), runtime.on_loop
            await asyncio.sleep(0)
            run.longest_turn_cpu_s = max(run.longest_turn_cpu_s, time.thread_time() - before)
            run.most_calls_in_one_turn = max(run.most_calls_in_one_turn, runtime.on_loop - calls_before)

    async def wait_for(pending: PendingRequest, outcome: Outcome) -> None:
        try:
            outcome.result = await pending.future
        except asyncio.CancelledError as exc:
            batcher.abandon(pending)  # as the service does when the waiting side is cancelled
            outcome.error = exc
        except Exception as exc:
            outcome.error = exc
        outcome.completions += 1
        outcome.finished_at = loop.time()

    beat = asyncio.create_task(heartbeat())
    deadline = loop.time() + STALL_S / 2
    waiters = []
    serial = 0.0
    for arrival in stream:
        await asyncio.sleep(arrival.after_ms / 1000)
        inputs = np.arange(arrival.samples * arrival.width, dtype=np.float32).reshape(arrival.samples, -1) + serial
        serial += 1000.0
        timeout = None if arrival.timeout_ms is None else arrival.timeout_ms / 1000
        try:
            pending = batcher.submit({"x": inputs}, ("y",), arrival.level, timeout)
        except Overloaded:
            run.rejected += 1
            continue
        outcome = Outcome(arrival, inputs, loop.time())
        run.outcomes.append(outcome)
        waiter = asyncio.create_task(wait_for(pending, outcome))
        waiters.append(waiter)
        if arrival.cancel_after_ms is not None:
            loop.call_later(arrival.cancel_after_ms / 1000, waiter.cancel)
        if arrival.disconnect_after_ms is not None:
            gone = ClientGone("the client disconnected")
            loop.call_later(arrival.disconnect_after_ms / 1000, batcher.drop, pending, gone, "disconnected")
    await asyncio.gather(*waiters, return_exceptions=True)
    # A call whose requests all left still runs to its end; then the instance must be free again.
    while batcher._busy and loop.time() < deadline:
        await asyncio.sleep(0.001)
    stop.set()
    await beat
    run.depth_after = batcher.depth
    run.samples_after = batcher._queued_samples
    run.level_counts_after = list(batcher._level_counts)
    run.busy_after = batcher._busy
    run.gauge_after = metrics.sample_value("servometer_queue_depth", {"model": "rows", "variant": "v"})
    await batcher.close(5)
    return run


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), spec=batching_specs(), call_ms=st.sampled_from([0.0, 0.2, 1.0, 3.0]))
def test_every_request_completes_once_with_its_own_rows_and_the_batcher_never_stalls(data, spec, call_ms):
    stream = data.draw(arrivals(spec))
    runtime = RowRuntime(call_ms / 1000)
    # A full garbage collection of the test process's heap can take a loop turn 100 ms: not the batcher's cost.
    gc.disable()
    try:
        run = run_in_own_loop(lambda: _exercise(spec, stream, runtime), timeout=STALL_S)
    finally:
        gc.enable()

    assert run.loop_errors == []
    largest = spec.max_batch_size if spec.enabled else max(a.samples for a in stream)
    assert all(1 <= size <= largest for size in runtime.calls), runtime.calls
    compute_s = len(runtime.calls) * runtime.seconds
    for outcome in run.outcomes:
        arrival = outcome.arrival
        assert outcome.completions == 1
        waited = outcome.finished_at - outcome.submitted_at
        limit = spec.max_queue_delay_ms / 1000 + compute_s + SLACK_S
        if arrival.timeout_ms is not None:
            limit = min(limit, arrival.timeout_ms / 1000 + compute_s + SLACK_S)
        assert waited <= limit, f"answered after {waited:.3f} s, bound {limit:.3f} s"
        if outcome.result is not None:
            np.testing.assert_array_equal(outcome.result["y"], outcome.inputs.sum(axis=1))
        else:
            assert isinstance(outcome.error, QueueTimeout | ClientGone | asyncio.CancelledError), repr(outcome.error)
            if isinstance(outcome.error, QueueTimeout):
                assert arrival.timeout_ms is not None
                assert waited >= arrival.timeout_ms / 1000 - 0.001
    assert run.depth_after == 0
    assert run.samples_after == 0
    assert run.level_counts_after == [0] * spec.priority_levels
    assert run.busy_after == 0
    assert run.gauge_after == 0
    assert run.most_calls_in_one_turn <= 1
    assert run.longest_turn_cpu_s <= runtime.seconds + LOOP_TURN_OVERHEAD_S


def test_batches_piled_up_behind_a_call_run_on_the_loop_one_per_turn():
    """The case the generated streams reach only by luck: calls short enough to run inline, and a queue of several
    batches waiting when the instance frees up. Forming them back to back without yielding held the loop for all."""
    spec = BatchingSpec(max_batch_size=2, max_queue_delay_ms=0, inline_compute_below_ms=5.0, max_queue_size=64)
    stream = [Arrival(0, 1, 2, 1, None, None, None) for _ in range(12)]
    runtime = RowRuntime(0.0002)
    run = run_in_own_loop(lambda: _exercise(spec, stream, runtime), timeout=STALL_S)
    assert runtime.on_loop >= 2  # the situation arose: several calls ran inline
    assert run.most_calls_in_one_turn == 1
