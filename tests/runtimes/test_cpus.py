"""The CPU allowance read from the kernel's files, and the thread counts shared out of it."""

import os
from pathlib import Path

import pytest

from app.runtimes.base import RuntimeOptions, within_allowance
from app.runtimes.cpus import CpuAllowance, cgroup_quota, read_allowance, threads_per_instance
from app.runtimes.onnx import OnnxRuntime
from tests.helpers import MODELS


def _write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_a_cgroup_v2_quota_binds_and_the_tightest_on_the_way_up_wins(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    _write(proc, {"cgroup": "0::/kubepods/pod1/container\n"})
    _write(root, {"cgroup.controllers": "cpu memory\n", "cpu.max": "max 100000\n"})
    _write(root / "kubepods" / "pod1", {"cpu.max": "150000 100000\n"})
    _write(root / "kubepods" / "pod1" / "container", {"cpu.max": "400000 100000\n"})
    assert cgroup_quota(proc, root) == 1.5


def test_a_cgroup_v1_quota_is_read_from_the_cpu_controller(tmp_path):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    _write(proc, {"cgroup": "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"})
    _write(root / "cpu,cpuacct", {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"})
    _write(root / "cpu,cpuacct" / "docker" / "abc", {"cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n"})
    assert cgroup_quota(proc, root) == 0.5


@pytest.mark.parametrize(
    "files",
    [
        {"cgroup": "0::/\n"},  # v2 without a cpu.max at the root
        {"cgroup": "1:cpu:/\n"},  # v1 without the controller mounted
    ],
)
def test_no_quota_or_no_readable_controller_means_no_limit(tmp_path, files):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    _write(proc, files)
    root.mkdir()
    assert cgroup_quota(proc, root) is None
    assert cgroup_quota(tmp_path / "no-proc", root) is None


@pytest.mark.parametrize(
    ("affinity", "quota", "cpus"),
    [(2, None, 2), (16, 4.0, 4), (16, 1.5, 1), (16, 0.2, 1), (2, 8.0, 2)],
)
def test_the_allowance_is_the_affinity_capped_by_the_quota_rounded_down(affinity, quota, cpus):
    assert CpuAllowance(affinity, quota).cpus == cpus


def test_the_allowance_counts_the_affinity_mask_of_this_process():
    assert read_allowance().affinity == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpus", "workers", "instances", "threads"),
    [
        # The README's table (CPUs, threads and workers): the demo has 11 variant instances.
        (1, 1, 11, 1),
        (2, 1, 11, 1),
        (2, 2, 11, 1),
        (16, 1, 11, 1),
        (1, 1, 1, 1),
        (2, 1, 1, 1),
        (16, 1, 1, 15),
        (16, 2, 1, 7),
        (16, 4, 1, 3),
        (16, 1, 3, 5),
        (3, 4, 1, 1),
    ],
)
def test_threads_that_may_compute_at_once_fit_the_cpus_left_by_the_event_loops(cpus, workers, instances, threads):
    assert threads_per_instance(cpus, workers, instances) == threads
    if cpus // workers > instances:  # room for each instance: all computing at once stay within the CPUs
        assert workers * (instances * threads + 1) <= cpus


def test_explicit_thread_settings_win_over_the_allowance():
    explicit = RuntimeOptions(onnx_intra_op_threads=3, onnx_inter_op_threads=2, torch_threads=5, workers=2)
    assert within_allowance(explicit, 1, CpuAllowance(64, None)) == explicit
    automatic = within_allowance(RuntimeOptions(workers=2), 1, CpuAllowance(64, None))
    assert (automatic.onnx_intra_op_threads, automatic.onnx_inter_op_threads, automatic.torch_threads) == (31, 1, 31)


def _pinned_elsewhere(before: set[int]) -> list[str]:
    """Threads of this process started after ``before`` whose affinity differs from the process's."""
    allowed = os.sched_getaffinity(0)
    return [
        f"thread {tid}: {sorted(os.sched_getaffinity(tid))}"
        for tid in (int(name) for name in os.listdir("/proc/self/task"))
        if tid not in before and os.sched_getaffinity(tid) != allowed
    ]


def test_an_onnx_session_left_unset_uses_the_allowed_cpus_and_pins_no_thread(demo_models):
    before = {int(name) for name in os.listdir("/proc/self/task")}
    runtime = OnnxRuntime(MODELS / "minilm" / "model.fp32.onnx", RuntimeOptions())
    try:
        assert runtime.threads == read_allowance().cpus
        assert _pinned_elsewhere(before) == []
    finally:
        runtime.close()
