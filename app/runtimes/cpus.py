"""The CPUs this process may use, and how many compute threads that leaves each model instance.

Runtimes left to choose their own thread counts take the host's: ONNX Runtime starts one thread per physical
core and pins each to its core, whatever the process's affinity mask or its container's CPU quota says. On a
shared host that steals the neighbours' cores; in a container with a CPU limit it oversubscribes the quota and
gets throttled. So every runtime is given an explicit count, taken from what the process is allowed.
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF = Path("/proc/self")


@dataclass(frozen=True)
class CpuAllowance:
    """What the kernel lets this process use."""

    affinity: int
    """CPUs in the process's affinity mask (``taskset``, ``docker --cpuset-cpus``, Kubernetes' static policy)."""
    quota: float | None
    """CPU time per wall-clock second its cgroup may take (``cpu.max``; ``docker --cpus``, Kubernetes' limits);
    None: no quota."""

    @property
    def cpus(self) -> int:
        """Threads that can compute at once without queueing for a CPU or being throttled: a fractional quota
        rounds down (1.5 CPUs of quota is one thread busy all the time plus slack), and never below one."""
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.floor(self.quota)))


def read_allowance(proc: Path = PROC_SELF, cgroup_root: Path = CGROUP_ROOT) -> CpuAllowance:
    return CpuAllowance(len(os.sched_getaffinity(0)), cgroup_quota(proc, cgroup_root))


def cgroup_quota(proc: Path = PROC_SELF, cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota on the way from the process's cgroup up to the root (a parent's limit binds its
    children too), cgroup v2 or v1; None when there is none or it cannot be read."""
    try:
        memberships = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one unified hierarchy, or beside v1 at unified/ (hybrid hosts)
            unified = cgroup_root if (cgroup_root / "cgroup.controllers").is_file() else cgroup_root / "unified"
            quotas += _along(unified, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in (cgroup_root / "cpu,cpuacct", cgroup_root / "cpu"):
                if mount.is_dir():
                    quotas += _along(mount, path, _v1_quota)
                    break
    return min(quotas, default=None)


def _along(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas found in ``path``'s folder under ``mount`` and each of its parents up to the mount."""
    folder = mount / path.strip("/")
    found = []
    while True:
        quota = read(folder)
        if quota is not None:
            found.append(quota)
        if folder == mount or mount not in folder.parents:
            return found
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    """``cpu.max`` holds ``<quota> <period>`` in microseconds, or ``max <period>`` for no limit."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def threads_per_instance(cpus: int, workers: int, instances: int) -> int:
    """Compute threads for each model instance when ``instances`` of them (summed over every loaded variant) may
    run at once in each of ``workers`` processes sharing ``cpus``. One CPU of each worker's share is left to its
    event loop, which decodes and encodes while the models compute, unless the share is a single CPU; and every
    instance gets at least one thread, so more instances than CPUs oversubscribe only as far as they are busy."""
    share = max(1, cpus // max(1, workers))
    for_models = share - 1 if share > 1 else 1
    return max(1, for_models // max(1, instances))
