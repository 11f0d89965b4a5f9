"""GPU utilization, memory and power through NVML (``nvidia-ml-py``), sampled in the background.

Never on the request path: a task reads NVML every ``interval_s`` in a worker thread and sets gauges. Without
NVML (no GPU, no driver, the package missing) ``servometer_gpu_available`` is 0, the per-GPU series are
absent, and nothing errors.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from app.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


def load_nvml() -> Any:
    """The initialised ``pynvml`` module (untyped), or None where there is no NVML to talk to."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no usable GPU here
        log.info("no GPU metrics: %s", exc)
        return None
    return pynvml


@dataclass(frozen=True)
class GpuReading:
    utilization: float
    """0..1"""
    memory_used: int
    memory_total: int
    power_watts: float


class GpuSampler:
    def __init__(self, metrics: Metrics, nvml: Any, interval_s: float) -> None:
        self.metrics = metrics
        self.nvml = nvml
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.readings: dict[str, GpuReading] = {}  # the latest reading per GPU UUID
        metrics.gpu_available.set(0 if nvml is None else 1)

    def start(self) -> None:
        if self.nvml is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except Exception as exc:  # a failing read loses one sample, never the sampler
                log.warning("GPU sampling failed: %s", exc)
            await asyncio.sleep(self.interval_s)

    def sample(self) -> None:
        """Read every GPU once and set its gauges (blocking: NVML calls take milliseconds)."""
        nvml = self.nvml
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            labels = (str(index), uuid)
            utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            reading = GpuReading(
                utilization.gpu / 100, memory.used, memory.total, nvml.nvmlDeviceGetPowerUsage(handle) / 1000
            )
            self.readings[uuid] = reading
            self.metrics.gpu_utilization.labels(*labels).set(reading.utilization)
            self.metrics.gpu_memory_used.labels(*labels).set(reading.memory_used)
            self.metrics.gpu_memory_total.labels(*labels).set(reading.memory_total)
            self.metrics.gpu_power.labels(*labels).set(reading.power_watts)

    def triton_lines(self) -> bytes:
        """The GPU lines ``perf_analyzer --collect-metrics`` parses, in Triton's names: exactly one label,
        ``gpu_uuid``, and plain decimals (its regex misreads prometheus_client's exponent notation)."""
        lines = []
        for uuid, reading in self.readings.items():
            for name, value in (
                ("nv_gpu_utilization", reading.utilization),
                ("nv_gpu_power_usage", reading.power_watts),
                ("nv_gpu_memory_used_bytes", reading.memory_used),
                ("nv_gpu_memory_total_bytes", reading.memory_total),
            ):
                lines.append(f'{name}{{gpu_uuid="{uuid}"}} {value:.6f}\n')
        return "".join(lines).encode()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.nvml is not None:
            self.nvml.nvmlShutdown()
