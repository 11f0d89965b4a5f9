"""GPU utilization, memory and power through NVML (``nvidia-ml-py``), sampled in the background.

Never on the request path: a task reads NVML every ``interval_s`` in a worker thread and sets gauges. Without
NVML (no GPU, no driver, the package missing) ``servometer_gpu_available`` is 0, the per-GPU series are
absent, and nothing errors.
"""

import asyncio
import logging
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


class GpuSampler:
    def __init__(self, metrics: Metrics, nvml: Any, interval_s: float) -> None:
        self.metrics = metrics
        self.nvml = nvml
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
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
            self.metrics.gpu_utilization.labels(*labels).set(utilization.gpu / 100)
            self.metrics.gpu_memory_used.labels(*labels).set(memory.used)
            self.metrics.gpu_memory_total.labels(*labels).set(memory.total)
            self.metrics.gpu_power.labels(*labels).set(nvml.nvmlDeviceGetPowerUsage(handle) / 1000)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.nvml is not None:
            self.nvml.nvmlShutdown()
