"""Starting a server process, waiting until it answers, stopping it by PID: one helper for the tests (Servometer,
Prometheus, Alertmanager) and the benchmarks (bench/servers.py). Nothing is left running when the block ends."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx


def wait_until_ready(
    process: subprocess.Popen[bytes],
    url: str,
    log: Path,
    timeout_s: float,
    ready: Callable[[int], bool] = lambda status: status == 200,
) -> None:
    """Poll ``url`` until its status satisfies ``ready``; fail with the log's tail if the process exits first or
    ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(url, timeout=2).status_code):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.args!r} not ready after {timeout_s:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(
    command: list[str],
    log: Path,
    ready_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
    ready: Callable[[int], bool] = lambda status: status == 200,
    start_timeout_s: float = 30.0,
    stop_signal: int = signal.SIGTERM,
    stop_timeout_s: float = 15.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` started with its output in ``log`` (and ``env`` over this process's environment), ready once
    ``ready_url`` answers (at once without one); stopped with ``stop_signal``, killed after ``stop_timeout_s``."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        if ready_url is not None:
            wait_until_ready(process, ready_url, log, start_timeout_s, ready)
        yield process
    finally:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
