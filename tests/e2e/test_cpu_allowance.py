"""The gateway stays on the CPUs it is given, with no thread setting of its own: under ``taskset -c 0`` every one
of its threads may run on core 0 only and under MiniLM load it uses one core; under a cgroup CPU quota of one
CPU it computes on one thread per model call."""

import concurrent.futures
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, minilm_tokens, v2_json
from tests.processes import running

CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")
# No thread setting may reach the gateway from the test's own environment: the defaults are under test.
THREAD_SETTINGS = ("SERVOMETER_ONNX_INTRA_OP_THREADS", "SERVOMETER_ONNX_INTER_OP_THREADS", "SERVOMETER_TORCH_THREADS")


@contextlib.contextmanager
def gateway(prefix: list[str], models: Path, log: Path) -> Iterator[tuple[int, str]]:
    port = free_port()
    serve = ["serve", "--port", str(port), "--models", str(models), "--no-build"]
    command = [*prefix, sys.executable, "-m", "app", *serve]
    saved = {name: os.environ.pop(name) for name in THREAD_SETTINGS if name in os.environ}
    try:
        address = f"127.0.0.1:{port}"
        with running(command, log, f"http://{address}/v2/health/ready", start_timeout_s=120) as process:
            yield process.pid, address
    finally:
        os.environ.update(saved)


def _threads(pid: int) -> dict[int, str]:
    """Each thread's name, by id."""
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            names[int(tid)] = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    return names


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _load(address: str, seconds: float) -> int:
    """MiniLM requests from 8 clients for ``seconds``, each with its own tokens (the cache cannot answer them)."""
    tokens = minilm_tokens(1)
    url = f"http://{address}/v2/models/minilm-ids/infer"

    def client(n: int) -> int:
        answered = 0
        with httpx.Client(timeout=60) as session:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                document = v2_json(tokens)
                document["parameters"] = {"cache": False}
                assert session.post(url, json=document).status_code == 200
                answered += 1
        return answered

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return sum(pool.map(client, range(8)))


def _metric(address: str, line_start: str) -> float:
    text = httpx.get(f"http://{address}/metrics").text
    return float(next(line for line in text.splitlines() if line.startswith(line_start)).rsplit(" ", 1)[1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to show the gateway keeps to one")
def test_under_taskset_no_thread_may_run_elsewhere_and_load_uses_one_core(demo_models, tmp_path):
    with gateway(["taskset", "-c", "0"], demo_models, tmp_path / "server.log") as (pid, address):
        started_cpu, started = _cpu_seconds(pid), time.monotonic()
        answered = _load(address, 4.0)
        cores_used = (_cpu_seconds(pid) - started_cpu) / (time.monotonic() - started)
        elsewhere = {
            f"{tid} ({name})": sorted(os.sched_getaffinity(tid))
            for tid, name in _threads(pid).items()
            if os.sched_getaffinity(tid) != {0}
        }
        assert elsewhere == {}, f"threads that may run outside core 0: {elsewhere}"
        assert answered > 0
        assert cores_used <= 1.05, f"the gateway used {cores_used:.2f} cores under load"
        assert _metric(address, "servometer_cpus_allowed ") == 1
        assert _metric(address, 'servometer_compute_threads{model="minilm-ids",variant="fp32"}') == 1
    assert "CPU allowance: 1 CPUs (affinity 1, cgroup quota none)" in (tmp_path / "server.log").read_text()


@contextlib.contextmanager
def cpu_cgroup(quota_us: int, period_us: int) -> Iterator[Path]:
    """A cgroup v1 CPU controller group of its own, removed afterwards; skips where cgroups cannot be made."""
    group = CPU_CGROUPS / f"servometer-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(period_us))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us))
    except OSError as exc:
        with contextlib.suppress(OSError):
            group.rmdir()
        pytest.skip(f"cannot make a cgroup with a CPU quota here ({exc}); tests/runtimes/test_cpus.py reads files")
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def test_under_a_one_cpu_cgroup_quota_every_model_call_computes_on_one_thread(demo_models, tmp_path):
    with cpu_cgroup(quota_us=100_000, period_us=100_000) as group:
        # The shell joins the group, then becomes the gateway: every thread it starts is in the group too.
        join = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh"]
        with gateway(join, demo_models, tmp_path / "server.log") as (pid, address):
            assert f":/{group.name}\n" in Path(f"/proc/{pid}/cgroup").read_text()
            assert _metric(address, "servometer_cpus_allowed ") == 1
            assert _metric(address, 'servometer_compute_threads{model="digits",variant="fp32"}') == 1
            assert _metric(address, 'servometer_compute_threads{model="digits",variant="torchscript"}') == 1
    log = (tmp_path / "server.log").read_text()
    assert f"CPU allowance: 1 CPUs (affinity {len(os.sched_getaffinity(0))}, cgroup quota 1)" in log
