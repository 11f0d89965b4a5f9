"""The dynamic batcher against the real demo models, with calls recorded and held by a gate."""

import asyncio
import math
import threading
import time

import numpy as np
import pytest

from app.batching.batcher import DynamicBatcher
from app.errors import ClientGone, ClientTimeout, ComputeTimeout, ModelFailed, Overloaded, QueueTimeout, Unavailable
from app.processing.pipeline import Pipeline
from app.runtimes.base import RuntimeOptions
from app.runtimes.onnx import OnnxRuntime
from app.schema.manifest import BatchingSpec
from app.telemetry.metrics import Metrics
from tests.helpers import MODELS, GatedRuntime, digits_images, minilm_tokens, run_in_own_loop

OUTPUTS = ("logits", "label")


@pytest.fixture(scope="module")
def digits_runtime(demo_models) -> OnnxRuntime:
    return OnnxRuntime(MODELS / "digits" / "model.fp32.onnx", RuntimeOptions())


def _batcher(
    runtime, metrics: Metrics | None = None, gated: GatedRuntime | None = None, alone: bool = False, **spec: object
) -> tuple[DynamicBatcher, GatedRuntime, Metrics]:
    metrics = metrics or Metrics()
    gated = gated or GatedRuntime(runtime)
    # The gate blocks inside the model call, so every call must run on a worker thread, never inline.
    settings = {
        "max_batch_size": 64,
        "max_queue_delay_ms": 5,
        "max_queue_size": 1024,
        "inline_compute_below_ms": 0,
        **spec,
    }
    batcher = DynamicBatcher(
        "model 'digits' variant 'fp32'",
        Pipeline(gated),
        BatchingSpec.model_validate(settings),
        metrics.for_variant("digits", "fp32"),
        alone=alone,
    )
    batcher.start()
    return batcher, gated, metrics


async def _hold_first_call(batcher: DynamicBatcher, gated: GatedRuntime, samples: int = 64):
    """Occupy the single instance with a full batch, so the requests that follow queue up behind it."""
    gated.gate.clear()
    first = batcher.submit({"image": digits_images(samples)}, OUTPUTS, 1, None)
    await asyncio.to_thread(gated.started.acquire)
    return first


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.sample_value(name, {"model": "digits", "variant": "fp32", **labels})
    return value or 0.0


async def test_concurrent_requests_share_model_calls_and_each_gets_exactly_its_own_rows(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_queue_delay_ms=200)
    first = await _hold_first_call(batcher, gated)
    images = digits_images(64)
    sizes = [1, 3, 2, 5, 1, 4, 2, 1, 6, 3, 2, 1]  # 31 samples in 12 requests
    starts = np.cumsum([0, *sizes[:-1]])
    pending = [
        batcher.submit({"image": images[s : s + n]}, OUTPUTS, 1, None) for s, n in zip(starts, sizes, strict=True)
    ]
    gated.gate.set()
    results = await asyncio.gather(first.future, *(p.future for p in pending))
    assert gated.batch_sizes() == [64, 31]
    alone = digits_runtime.infer({"image": images[:31]}, OUTPUTS)
    for (s, n), result in zip(zip(starts, sizes, strict=True), results[1:], strict=True):
        for name in OUTPUTS:
            np.testing.assert_array_equal(result[name], alone[name][s : s + n])
    await batcher.close(5)


async def test_a_full_batch_goes_at_once_without_waiting_for_the_delay(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime, max_batch_size=8, max_queue_delay_ms=30_000)
    started = time.monotonic()
    pending = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(8)]
    await asyncio.gather(*(p.future for p in pending))
    assert time.monotonic() - started < 5
    assert gated.batch_sizes() == [8]
    assert _sample(metrics, "servometer_batches_total", reason="full") == 1
    await batcher.close(5)


async def test_a_partial_batch_waits_for_the_oldest_requests_delay(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime, max_batch_size=8, max_queue_delay_ms=150, adaptive_delay=False)
    started = time.monotonic()
    pending = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(3)]
    await asyncio.gather(*(p.future for p in pending))
    assert time.monotonic() - started >= 0.14
    assert gated.batch_sizes() == [3]
    assert _sample(metrics, "servometer_batches_total", reason="delay") == 1
    assert _sample(metrics, "servometer_queue_duration_seconds_count") == 3
    await batcher.close(5)


@pytest.mark.parametrize(("adaptive", "dispatched_early"), [(True, True), (False, False)])
async def test_a_lone_request_skips_the_delay_only_with_adaptive_delay(digits_runtime, adaptive, dispatched_early):
    batcher, _, metrics = _batcher(digits_runtime, max_batch_size=8, max_queue_delay_ms=300, adaptive_delay=adaptive)
    started = time.monotonic()
    await batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None).future
    assert (time.monotonic() - started < 0.2) is dispatched_early
    assert (_sample(metrics, "servometer_batches_total", reason="idle") == 1) is dispatched_early
    await batcher.close(5)


async def test_adaptive_delay_waits_for_companions_until_arrivals_go_quiet(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime, max_batch_size=8, max_queue_delay_ms=2000)
    first = await _hold_first_call(batcher, gated, samples=8)
    queued = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(2)]
    started = time.monotonic()
    gated.gate.set()
    await asyncio.gather(first.future, *(p.future for p in queued))
    # Two requests queued together wait for more, but only a tenth of the delay after the last arrival.
    assert 0.15 <= time.monotonic() - started < 1.5
    assert gated.batch_sizes() == [8, 2]
    assert _sample(metrics, "servometer_batches_total", reason="idle") == 1
    await batcher.close(5)


async def test_the_largest_ready_preferred_size_is_formed_instead_of_waiting(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime, preferred_batch_sizes=[4, 8], max_queue_delay_ms=30_000)
    first = await _hold_first_call(batcher, gated)
    pending = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(11)]
    gated.gate.set()
    await asyncio.gather(first.future, *(p.future for p in pending[:8]))
    assert gated.batch_sizes()[:2] == [64, 8]
    assert _sample(metrics, "servometer_batches_total", reason="preferred") >= 1
    # Three remain: not a preferred size, so they wait for the delay (30 s) until shutdown drains them.
    await asyncio.sleep(0.1)
    assert batcher.depth == 3
    await batcher.close(5)
    await asyncio.gather(*(p.future for p in pending[8:]))
    assert gated.batch_sizes() == [64, 8, 3]


async def test_requests_with_different_non_batch_shapes_never_share_a_call(demo_models):
    runtime = OnnxRuntime(MODELS / "minilm" / "model.fp32.onnx", RuntimeOptions())
    metrics = Metrics()
    gated = GatedRuntime(runtime)
    spec = BatchingSpec(max_batch_size=32, max_queue_delay_ms=50, inline_compute_below_ms=0)
    batcher = DynamicBatcher(
        "model 'minilm' variant 'fp32'", Pipeline(gated), spec, metrics.for_variant("minilm", "fp32")
    )
    batcher.start()
    tokens = minilm_tokens(4)
    short = {name: array[:, :8] for name, array in tokens.items()}
    pending = [batcher.submit(feed, ("sentence_embedding",), 1, None) for feed in (tokens, short, tokens, short)]
    await asyncio.gather(*(p.future for p in pending))
    assert sorted(gated.batch_sizes()) == [8, 8]
    assert sorted({call["input_ids"].shape[1] for call in gated.calls}) == [8, tokens["input_ids"].shape[1]]
    await batcher.close(5)


async def test_higher_priority_requests_are_batched_first(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_batch_size=0, priority_levels=2)
    first = await _hold_first_call(batcher, gated, samples=1)
    images = digits_images(3)
    low = [batcher.submit({"image": images[i : i + 1]}, OUTPUTS, 2, None) for i in range(2)]
    high = batcher.submit({"image": images[2:3]}, OUTPUTS, 1, None)
    gated.gate.set()
    await asyncio.gather(first.future, high.future, *(p.future for p in low))
    order = [call["image"] for call in gated.calls[1:]]
    np.testing.assert_array_equal(order[0], images[2:3])
    np.testing.assert_array_equal(np.concatenate(order[1:]), images[:2])
    await batcher.close(5)


@pytest.mark.parametrize("status", [503, 429])
async def test_a_full_queue_rejects_at_once_with_retry_after(digits_runtime, status):
    batcher, gated, metrics = _batcher(digits_runtime, max_queue_size=2, overload_status=status)
    first = await _hold_first_call(batcher, gated)
    queued = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(2)]
    with pytest.raises(Overloaded) as caught:
        batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    assert caught.value.status == status
    assert caught.value.headers == {"retry-after": "1"}
    assert "queue of model 'digits' variant 'fp32' is full (2 requests)" in caught.value.message
    assert _sample(metrics, "servometer_queue_dropped_requests_total", reason="queue_full") == 1
    gated.gate.set()
    await asyncio.gather(first.future, *(p.future for p in queued))
    await batcher.close(5)


async def test_a_per_level_limit_keeps_room_for_higher_priority(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, priority_levels=2, max_queue_size_per_level={2: 1})
    first = await _hold_first_call(batcher, gated)
    low = batcher.submit({"image": digits_images(1)}, OUTPUTS, 2, None)
    with pytest.raises(Overloaded, match="priority 2 queue"):
        batcher.submit({"image": digits_images(1)}, OUTPUTS, 2, None)
    high = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    gated.gate.set()
    await asyncio.gather(first.future, low.future, high.future)
    await batcher.close(5)


async def test_a_request_past_its_queue_timeout_never_reaches_the_model(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime)
    first = await _hold_first_call(batcher, gated)
    marked = np.full((1, 1, 8, 8), 7.0, np.float32)
    late = batcher.submit({"image": marked}, OUTPUTS, 1, 0.05)
    with pytest.raises(QueueTimeout, match="waited 50 ms in the queue"):
        await late.future
    assert batcher.depth == 0
    gated.gate.set()
    await first.future
    await asyncio.sleep(0.05)
    assert all(not np.array_equal(call["image"], marked) for call in gated.calls)
    assert _sample(metrics, "servometer_queue_dropped_requests_total", reason="timeout") == 1
    await batcher.close(5)


async def test_a_request_whose_client_left_is_dropped_before_compute(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime)
    first = await _hold_first_call(batcher, gated)
    gone = batcher.submit({"image": digits_images(2)}, OUTPUTS, 1, None)
    batcher.drop(gone, ClientGone("client left"), "disconnected")
    gated.gate.set()
    await first.future
    with pytest.raises(ClientGone):
        await gone.future
    await asyncio.sleep(0.05)
    assert gated.batch_sizes() == [64]
    assert _sample(metrics, "servometer_queue_dropped_requests_total", reason="disconnected") == 1
    await batcher.close(5)


async def test_a_failing_model_fails_every_request_in_the_batch_and_the_next_batch_still_runs(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_queue_delay_ms=20)
    first = await _hold_first_call(batcher, gated)
    bad = [batcher.submit({"image": digits_images(1)}, ("no_such_output",), 1, None) for _ in range(3)]
    gated.gate.set()
    await first.future
    for pending in bad:
        with pytest.raises(ModelFailed, match="model 'digits' variant 'fp32' failed"):
            await pending.future
    good = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    assert (await good.future)["label"].shape == (1,)
    await batcher.close(5)


class _FailsOnMarker(GatedRuntime):
    """Fails any call holding a sample whose pixels are all ``MARKER``, as a model fails on one bad input."""

    MARKER = -1.0

    def infer(self, inputs, outputs):
        result = super().infer(inputs, outputs)
        if (inputs["image"] == self.MARKER).all(axis=(1, 2, 3)).any():
            raise RuntimeError("bad sample in the batch")
        return result


@pytest.mark.parametrize(("requests", "bad"), [(2, {0}), (8, {5}), (13, {0, 12}), (16, {3, 4, 9})])
async def test_a_failing_batch_is_split_until_only_the_requests_that_fail_alone_fail(digits_runtime, requests, bad):
    batcher, runtime, _ = _batcher(digits_runtime, gated=_FailsOnMarker(digits_runtime))
    first = await _hold_first_call(batcher, runtime, samples=1)
    # Request i sends one image of pixels i + 1 (or the marker): its rows are recognisable in every call.
    images = [
        np.full((1, 1, 8, 8), _FailsOnMarker.MARKER if i in bad else i + 1.0, np.float32) for i in range(requests)
    ]
    pending = [batcher.submit({"image": image}, OUTPUTS, 1, None) for image in images]
    runtime.gate.set()
    await first.future
    for i, request in enumerate(pending):
        if i in bad:
            with pytest.raises(ModelFailed, match="failed on this request"):
                await request.future
        else:
            alone = digits_runtime.infer({"image": images[i]}, OUTPUTS)
            np.testing.assert_array_equal((await request.future)["logits"], alone["logits"])
    for i, image in enumerate(images):
        if i in bad:  # their images are all alike
            continue
        calls = sum(bool((call["image"] == image[0]).all(axis=(1, 2, 3)).any()) for call in runtime.calls[1:])
        # The batch's own call, then at most one call per halving.
        assert calls - 1 <= math.ceil(math.log2(requests)), (i, calls)
    await batcher.close(5)


class _SlowFailsOnMarker(_FailsOnMarker):
    """Each call takes a third of the compute timeout below."""

    def infer(self, inputs, outputs):
        time.sleep(0.1)
        return super().infer(inputs, outputs)


async def test_each_retry_of_a_split_batch_gets_the_compute_timeout_of_its_own(digits_runtime):
    # 1 + 2 x 3 calls of 0.1 s for 8 requests: longer than one 0.3 s timeout, each call well within one.
    batcher, runtime, _ = _batcher(
        digits_runtime, gated=_SlowFailsOnMarker(digits_runtime), compute_timeout_ms=300, max_queue_delay_ms=50
    )
    first = await _hold_first_call(batcher, runtime, samples=1)
    images = [np.full((1, 1, 8, 8), _FailsOnMarker.MARKER if i == 6 else i + 1.0, np.float32) for i in range(8)]
    pending = [batcher.submit({"image": image}, OUTPUTS, 1, None) for image in images]
    runtime.gate.set()
    await first.future
    for i, request in enumerate(pending):
        if i == 6:
            with pytest.raises(ModelFailed):
                await request.future
        else:
            assert (await request.future)["logits"].shape == (1, 10)
    await batcher.close(5)


async def test_a_variant_served_alone_never_shares_a_model_call(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, alone=True)
    first = await _hold_first_call(batcher, gated, samples=1)
    pending = [batcher.submit({"image": digits_images(n)}, OUTPUTS, 1, None) for n in (2, 1, 3, 1, 1)]
    gated.gate.set()
    await asyncio.gather(first.future, *(p.future for p in pending))
    assert gated.batch_sizes() == [1, 2, 1, 3, 1, 1]
    await batcher.close(5)


async def test_a_timeout_the_client_chose_expires_as_the_clients_own(digits_runtime):
    batcher, gated, metrics = _batcher(digits_runtime)
    first = await _hold_first_call(batcher, gated)
    chosen = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, 0.01, client_timeout=True)
    default = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, 0.01)
    with pytest.raises(ClientTimeout) as client_side:
        await chosen.future
    with pytest.raises(QueueTimeout) as server_side:
        await default.future
    assert client_side.value.outcome == "client_timeout"
    assert server_side.value.outcome == "timeout"
    assert _sample(metrics, "servometer_queue_dropped_requests_total", reason="client_timeout") == 1
    assert _sample(metrics, "servometer_queue_dropped_requests_total", reason="timeout") == 1
    gated.gate.set()
    await first.future
    await batcher.close(5)


async def test_with_batching_off_each_request_is_its_own_model_call(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_batch_size=0)
    first = await _hold_first_call(batcher, gated, samples=1)
    pending = [batcher.submit({"image": digits_images(n)}, OUTPUTS, 1, None) for n in (2, 1, 3)]
    gated.gate.set()
    await asyncio.gather(first.future, *(p.future for p in pending))
    assert gated.batch_sizes() == [1, 2, 1, 3]
    await batcher.close(5)


async def test_shutdown_finishes_queued_requests_and_refuses_new_ones(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_queue_delay_ms=30_000)
    first = await _hold_first_call(batcher, gated)
    queued = [batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None) for _ in range(5)]
    closing = asyncio.create_task(batcher.close(10))
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    gated.gate.set()
    await closing
    assert (await first.future)["label"].shape == (64,)
    results = await asyncio.gather(*(p.future for p in queued))
    assert all(result["label"].shape == (1,) for result in results)
    assert gated.batch_sizes() == [64, 5]


async def test_shutdown_past_its_deadline_fails_what_is_left_instead_of_hanging(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime)
    first = await _hold_first_call(batcher, gated)
    queued = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    await batcher.close(0.2)
    for pending in (first, queued):
        with pytest.raises(Unavailable, match="shut down"):
            await pending.future
    gated.gate.set()


class _ThreadRecorder:
    """The real digits runtime, noting which thread ran each call."""

    def __init__(self, inner: OnnxRuntime) -> None:
        self.inner = inner
        self.threads: list[int] = []

    def infer(self, inputs, outputs):
        self.threads.append(threading.get_ident())
        return self.inner.infer(inputs, outputs)


@pytest.mark.parametrize(("inline_below_ms", "on_loop_after_first"), [(50.0, True), (0.0, False)])
async def test_calls_measured_shorter_than_a_thread_handoff_run_on_the_event_loop(
    digits_runtime, inline_below_ms, on_loop_after_first
):
    recorder = _ThreadRecorder(digits_runtime)
    spec = BatchingSpec(max_batch_size=8, inline_compute_below_ms=inline_below_ms)
    batcher = DynamicBatcher("digits", Pipeline(recorder), spec, Metrics().for_variant("digits", "fp32"))  # type: ignore[arg-type]
    batcher.start()
    for _ in range(3):
        await batcher.submit({"image": digits_images(8)}, OUTPUTS, 1, None).future
    loop_thread = threading.get_ident()
    assert recorder.threads[0] != loop_thread  # nothing measured yet: the first call goes to a worker
    assert all((thread == loop_thread) is on_loop_after_first for thread in recorder.threads[1:])
    await batcher.close(5)


async def test_instances_set_how_many_batches_compute_at_once(digits_runtime):
    batcher, gated, _ = _batcher(digits_runtime, max_batch_size=4, instances=2)
    gated.gate.clear()
    pending = [batcher.submit({"image": digits_images(4)}, OUTPUTS, 1, None) for _ in range(3)]
    for _ in range(2):  # two calls enter the model while the gate is shut; the third waits for an instance
        await asyncio.to_thread(gated.started.acquire)
    await asyncio.sleep(0.1)
    assert gated.batch_sizes() == [4, 4]
    gated.gate.set()
    await asyncio.gather(*(p.future for p in pending))
    assert gated.batch_sizes() == [4, 4, 4]
    await batcher.close(5)


async def test_a_call_past_compute_timeout_fails_its_requests_504_and_frees_the_instance_when_it_returns(
    digits_runtime,
):
    batcher, gated, _ = _batcher(digits_runtime, compute_timeout_ms=100)
    gated.gate.clear()
    started = time.monotonic()
    hung = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    with pytest.raises(ComputeTimeout, match=r"did not finish within compute_timeout_ms \(100 ms\)"):
        await hung.future
    assert time.monotonic() - started < 2  # answered at the limit, not when the model gets round to it
    queued = batcher.submit({"image": digits_images(1)}, OUTPUTS, 1, None)
    await asyncio.sleep(0.2)
    assert not queued.future.done()  # the one instance is still inside the hung call
    gated.gate.set()
    result = await asyncio.wait_for(queued.future, 10)
    assert set(result) == set(OUTPUTS)
    await batcher.close(1)


@pytest.mark.parametrize("samples", [17, 20, 33, 63])
def test_a_request_bigger_than_the_preferred_size_it_reaches_is_answered_and_the_loop_keeps_turning(
    digits_runtime, samples
):
    """Once froze the whole server: trimming to the preferred size left no member, and the dispatch loop formed
    the same empty batch forever without awaiting."""

    async def scenario() -> tuple[list[int], dict[str, np.ndarray], int]:
        batcher, gated, _ = _batcher(digits_runtime, preferred_batch_sizes=[16, 32, 64], max_queue_delay_ms=2)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.create_task(tick())
        result = await batcher.submit({"image": digits_images(samples)}, OUTPUTS, 1, None).future
        await asyncio.sleep(0.05)
        ticker.cancel()
        await batcher.close(5)
        return gated.batch_sizes(), result, ticks

    sizes, result, ticks = run_in_own_loop(scenario, timeout=60)
    assert sizes == [samples]
    alone = digits_runtime.infer({"image": digits_images(samples)}, OUTPUTS)
    np.testing.assert_array_equal(result["label"], alone["label"])
    assert ticks > 0
