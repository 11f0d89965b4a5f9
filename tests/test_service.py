"""The inference service's model lifecycle: a variant serves only once its batcher runs and has been warmed up,
and the server's readiness follows what is loaded."""

import asyncio

import numpy as np
import pytest

from app.errors import Unavailable
from app.processing.pipeline import Pipeline
from app.protocol.codec import DecodedRequest, Tensor
from app.repository.registry import Registry, VariantState
from app.routing.router import Router
from app.routing.shadow import Shadows
from app.runtimes.base import RuntimeOptions
from app.service import InferenceService
from app.telemetry.metrics import Metrics
from app.variants.latest_reports import VariantReports
from tests.helpers import GatedRuntime, copy_model, digits_images


@pytest.fixture
def repository(tmp_path, demo_models):
    copy_model("digits", tmp_path)
    return tmp_path


def _service(root) -> InferenceService:
    registry = Registry(root, RuntimeOptions())
    registry.scan()
    registry.load_all()
    metrics = Metrics()
    reports = VariantReports(registry, metrics, 0.0, root / ".reports")
    return InferenceService(registry, metrics, None, Router(reports), Shadows(metrics))


def _request(images: np.ndarray) -> DecodedRequest:
    return DecodedRequest(None, {}, [Tensor("image", "FP32", images)], None)


async def test_a_variant_is_ready_only_after_its_warm_up_call_and_that_call_is_the_first_the_model_sees(repository):
    service = _service(repository)
    fp32 = service.registry.resolve("digits", "fp32")
    gated = GatedRuntime(fp32.runtime)  # type: ignore[arg-type]
    gated.gate.clear()
    fp32.runtime, fp32.pipeline = gated, Pipeline(gated, fp32.manifest.steps, fp32.path.parent)
    starting = asyncio.create_task(service.start())
    await asyncio.to_thread(gated.started.acquire)  # the warm-up call is inside the model
    assert fp32.state is VariantState.LOADED
    assert service.not_ready_reasons() == ["models are still loading"]
    with pytest.raises(Unavailable, match="variant 'fp32' is not ready: warming up"):
        await service.infer(fp32, _request(digits_images(1)))
    gated.gate.set()
    await starting
    assert service.registry.resolve("digits", "fp32").state is VariantState.READY
    assert service.not_ready_reasons() == []
    assert gated.batch_sizes() == [1]  # the warm-up: one sample, before any request
    np.testing.assert_array_equal(gated.calls[0]["image"], digits_images(1))  # a real one: the evaluation data's
    result = await service.infer(fp32, _request(digits_images(2)))
    assert result.outputs[0][1].shape[0] == 2
    await service.close(5)


async def test_a_variant_whose_warm_up_call_fails_is_unavailable_and_the_others_serve(repository):
    service = _service(repository)
    int8 = service.registry.resolve("digits", "int8")

    class Broken(GatedRuntime):
        def infer(self, inputs, outputs):
            raise RuntimeError("kernel exploded")

    broken = Broken(int8.runtime)  # type: ignore[arg-type]
    int8.runtime, int8.pipeline = broken, Pipeline(broken, int8.manifest.steps, int8.path.parent)
    await service.start()
    assert int8.state is VariantState.UNAVAILABLE
    assert "its warm-up call failed (RuntimeError" in int8.reason
    assert "kernel exploded" not in int8.reason  # the model's message is for the log, not for clients
    assert service.registry.resolve("digits", "fp32").state is VariantState.READY
    assert service.not_ready_reasons() == []
    await service.close(5)


async def test_unloading_a_required_model_makes_the_server_not_ready_until_it_is_loaded_again(repository):
    service = _service(repository)
    await service.start()
    assert service.not_ready_reasons() == []
    await service.unload_model("digits", drain_timeout=5)
    assert service.not_ready_reasons() == ["required model 'digits' is not loaded (it was unloaded)"]
    entry = await service.load_model("digits", drain_timeout=5)
    assert entry.variants["fp32"].state is VariantState.READY
    assert service.not_ready_reasons() == []
    await service.close(5)


async def test_concurrent_loads_of_one_model_leave_one_version_serving_and_close_the_others(repository):
    service = _service(repository)
    await service.start()
    original = service.registry.get("digits")
    first, second = await asyncio.gather(*(service.load_model("digits", drain_timeout=5) for _ in range(2)))
    serving = service.registry.get("digits")
    assert serving is second  # loads run one after the other: the second replaced the first
    for entry in (original, first):
        assert all(variant.runtime is None for variant in entry.variants.values())  # closed, not leaked
    fp32 = serving.variants["fp32"]
    result = await service.infer(fp32, _request(digits_images(1)))
    assert result.outputs[0][1].shape[0] == 1
    await service.close(5)
