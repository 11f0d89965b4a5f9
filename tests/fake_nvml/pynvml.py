"""A stand-in for ``pynvml`` (nvidia-ml-py) answering like a driver with two GPUs would.

No GPU is lent to the tests: the sampler's unit tests use :class:`FakeNvml` directly, and tests that run a real
gateway process put this folder first on its ``PYTHONPATH``, so its GPU series exist for the dashboards' queries.
"""

from types import SimpleNamespace


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


# pynvml's module-level names, answered by one fake driver.
_DRIVER = FakeNvml()


def nvmlInit() -> None:  # noqa: N802 - NVML's names
    """The driver is always there."""


nvmlDeviceGetCount = _DRIVER.nvmlDeviceGetCount  # noqa: N816
nvmlDeviceGetHandleByIndex = _DRIVER.nvmlDeviceGetHandleByIndex  # noqa: N816
nvmlDeviceGetUUID = _DRIVER.nvmlDeviceGetUUID  # noqa: N816
nvmlDeviceGetUtilizationRates = _DRIVER.nvmlDeviceGetUtilizationRates  # noqa: N816
nvmlDeviceGetMemoryInfo = _DRIVER.nvmlDeviceGetMemoryInfo  # noqa: N816
nvmlDeviceGetPowerUsage = _DRIVER.nvmlDeviceGetPowerUsage  # noqa: N816
nvmlShutdown = _DRIVER.nvmlShutdown  # noqa: N816
