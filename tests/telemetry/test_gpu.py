"""The GPU sampler without NVML (this machine) and with a fake NVML handle that answers like a driver would."""

import asyncio
import importlib.util
import re
import time

from app.telemetry.gpu import GpuSampler, load_nvml
from app.telemetry.metrics import Metrics
from tests.fake_nvml.pynvml import FakeNvml


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.sample_value(name, labels)


def test_without_nvml_gpu_metrics_are_absent_and_available_is_zero():
    if importlib.util.find_spec("pynvml") is None:  # the cpu install has no nvidia-ml-py: loading must not fail
        assert load_nvml() is None
    metrics = Metrics()
    GpuSampler(metrics, None, 1.0)
    assert _value(metrics, "servometer_gpu_available") == 0
    assert "servometer_gpu_utilization_ratio{" not in metrics.render().decode()


def test_a_sample_sets_utilization_memory_and_power_per_gpu_in_base_units():
    metrics, nvml = Metrics(), FakeNvml()
    GpuSampler(metrics, nvml, 1.0).sample()
    assert _value(metrics, "servometer_gpu_available") == 1
    assert _value(metrics, "servometer_gpu_utilization_ratio", gpu="1", uuid="GPU-1") == 0.9
    assert _value(metrics, "servometer_gpu_memory_used_bytes", gpu="0", uuid="GPU-0") == 2**30
    assert _value(metrics, "servometer_gpu_memory_total_bytes", gpu="1", uuid="GPU-1") == 80 * 2**30
    assert _value(metrics, "servometer_gpu_power_watts", gpu="0", uuid="GPU-0") == 250.0


async def test_the_sampler_runs_in_the_background_until_closed():
    metrics, nvml = Metrics(), FakeNvml()
    sampler = GpuSampler(metrics, nvml, 0.01)
    assert _value(metrics, "servometer_gpu_available") == 1
    sampler.start()
    deadline = time.monotonic() + 30
    while nvml.reads < 4:  # two GPUs, two rounds at least
        assert time.monotonic() < deadline, "the sampler did not run"
        await asyncio.sleep(0.01)
    await sampler.close()
    reads = nvml.reads
    await asyncio.sleep(0.05)
    assert nvml.reads == reads
    assert nvml.shut_down


def test_triton_style_gpu_lines_have_one_label_and_plain_decimals():
    sampler = GpuSampler(Metrics(), FakeNvml(), 1.0)
    sampler.sample()
    lines = sampler.triton_lines().decode().splitlines()
    pattern = re.compile(
        r'^nv_gpu_(utilization|power_usage|memory_used_bytes|memory_total_bytes)\{gpu_uuid="([^"]+)"\} (\d+\.?\d*)$'
    )
    assert len(lines) == 8
    assert all(pattern.match(line) for line in lines)
    assert 'nv_gpu_memory_total_bytes{gpu_uuid="GPU-1"} 85899345920.000000' in lines


async def test_metrics_endpoint_appends_triton_gpu_lines_only_when_asked(demo_models):
    from tests.api.conftest import async_app

    for enabled in (False, True):
        async with async_app(demo_models, triton_gpu_metrics=enabled) as (app, client):
            app.state.context.gpus.nvml = FakeNvml()
            app.state.context.gpus.sample()
            text = (await client.get("/metrics")).text
            assert ('nv_gpu_utilization{gpu_uuid="GPU-0"} 0.400000' in text) is enabled
