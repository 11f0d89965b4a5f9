"""The GPU sampler without NVML (this machine) and with a fake NVML handle that answers like a driver would."""

import asyncio
import importlib.util
from types import SimpleNamespace

from app.telemetry.gpu import GpuSampler, load_nvml
from app.telemetry.metrics import Metrics


class FakeNvml:
    """NVML's calls as pynvml exposes them, for two GPUs."""

    def __init__(self) -> None:
        self.shut_down = False
        self.reads = 0

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - NVML's names
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:  # noqa: N802
        return f"GPU-{handle}".encode()

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:  # noqa: N802
        self.reads += 1
        return SimpleNamespace(gpu=40 + handle * 50, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(used=(handle + 1) * 2**30, total=80 * 2**30, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return 250_000  # milliwatts

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shut_down = True


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


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
    await asyncio.sleep(0.1)
    await sampler.close()
    reads = nvml.reads
    assert reads >= 4  # two GPUs, several rounds
    await asyncio.sleep(0.05)
    assert nvml.reads == reads
    assert nvml.shut_down
