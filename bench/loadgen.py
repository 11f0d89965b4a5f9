"""Load generators, pinned to the second core: wrk (the same bodies for every server) and perf_analyzer."""

import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADGEN_CPU = "1"
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    p50_s: float
    p99_s: float
    errors: int
    mean_s: float | None = None
    """wrk's average latency (perf_analyzer's runs leave it out)."""


_NEW_VALUES = itertools.count(1)


def wrk(
    url: str,
    body_file: Path,
    header_length: int | None,
    concurrency: int,
    seconds: float,
    vary: dict[str, str] | None = None,
) -> Measurement:
    """A closed-loop run of ``concurrency`` connections posting the same body for ``seconds``; with ``vary``
    (:func:`varying`), every request is made new (or ``REPEAT_SHARE`` of them repeat popular ones), and no run
    repeats another's values."""
    env = {
        **os.environ,
        "BODY_FILE": str(body_file),
        "HEADER_LENGTH": "" if header_length is None else str(header_length),
        **(vary or {}),
        "FIRST_NEW": str(1000 + 200_000 * next(_NEW_VALUES)),
    }
    return _run_wrk("varied.lua" if vary else "request.lua", url, env, concurrency, seconds)


def wrk_bodies(url: str, bodies_file: Path, concurrency: int, seconds: float) -> Measurement:
    """A closed-loop run of ``concurrency`` connections posting the JSON bodies of ``bodies_file`` (one a line)
    in turn for ``seconds``."""
    return _run_wrk("bodies.lua", url, {**os.environ, "BODIES_FILE": str(bodies_file)}, concurrency, seconds)


def _run_wrk(script: str, url: str, env: dict[str, str], concurrency: int, seconds: float) -> Measurement:
    command = [
        "taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(HERE / script), url,
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return parse_wrk(output)


def varying(body: bytes, header_length: int | None, repeat_share: float = 0.0) -> dict[str, str]:
    """How bench/varied.lua makes each request new: the first value of the first tensor is rewritten, a float32
    in [8, 16) in its bytes for binary tensors, a decimal integer in place of the first number for JSON (distinct
    below 2**24, which float32 keeps exact: a run sends far fewer)."""
    if header_length is not None:
        where = {"VARY_AT": str(header_length), "VARY_LEN": "4", "VARY_KIND": "f32"}
    else:
        start = body.index(b'"data":[') + len(b'"data":[')
        end = min(body.index(b",", start), body.index(b"]", start))
        where = {"VARY_AT": str(start), "VARY_LEN": str(end - start), "VARY_KIND": "text"}
    return {**where, "REPEAT_SHARE": str(repeat_share)}


def parse_wrk(output: str) -> Measurement:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not (rate and p50 and p99):
        raise ValueError(f"cannot read wrk's output:\n{output}")
    mean = re.search(r"^\s+Latency\s+([\d.]+)(us|ms|s)\s", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (sum(int(n) for n in socket.groups()) if socket else 0)
    return Measurement(
        float(rate[1]),
        float(p50[1]) * _UNITS[p50[2]],
        float(p99[1]) * _UNITS[p99[2]],
        errors,
        float(mean[1]) * _UNITS[mean[2]] if mean else None,
    )


def perf_analyzer_command() -> list[str] | None:
    """Triton's perf_analyzer: on PATH, or the wrapper in ../shared/tools that makes it run on Debian 12."""
    shared = HERE.parent.parent / "shared" / "tools" / "perf_analyzer"
    if shared.is_file():
        return [str(shared)]
    found = shutil.which("perf_analyzer")
    return [found] if found else None


def perf_analyzer(
    command: list[str],
    model: str,
    address: str,
    concurrency: int,
    extra: list[str],
    seconds: float,
    protocol: str = "http",
    stabilize_on_p99: bool = True,
) -> Measurement:
    """perf_analyzer on the load generator's core; ``protocol`` http (binary tensors) or grpc. It repeats its
    measurement window until two agree: on their p99, or (``stabilize_on_p99`` False) their mean latency."""
    args = [
        "taskset", "-c", LOADGEN_CPU, *command, "-m", model, "-u", address, "-i", protocol,
        "--concurrency-range", f"{concurrency}:{concurrency}", "--measurement-interval", str(int(seconds * 1000)),
        "--max-trials", "6", *(["--percentile", "99"] if stabilize_on_p99 else []), *extra,
    ]  # fmt: skip
    completed = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    if completed.returncode != 0:
        said = (completed.stdout + completed.stderr)[-1500:]
        raise ValueError(f"perf_analyzer exited with {completed.returncode}: {said}")
    return parse_perf_analyzer(completed.stdout)


def parse_perf_analyzer(output: str) -> Measurement:
    rate = re.search(r"Throughput: ([\d.]+) infer/sec", output)
    p50 = re.search(r"p50 latency: (\d+) usec", output)
    p99 = re.search(r"p99 latency: (\d+) usec", output)
    if not (rate and p50 and p99):
        raise ValueError(f"cannot read perf_analyzer's output:\n{output}")
    return Measurement(float(rate[1]), int(p50[1]) * 1e-6, int(p99[1]) * 1e-6, 0)
