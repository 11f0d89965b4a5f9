"""The servers under test, each pinned to the first core, started and stopped by PID."""

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.processes import running

SERVER_CPU = "0"
ROOT = Path(__file__).resolve().parent.parent
# One core: one onnxruntime thread, or the model would fight the server for it.
ONE_THREAD = {"SERVOMETER_ONNX_INTRA_OP_THREADS": "1", "SERVOMETER_ONNX_INTER_OP_THREADS": "1"}
# The batching benchmark sends one body again and again: with the cache on it would measure cache hits. gRPC is
# off unless a benchmark gives it a port: servers of different revisions may run side by side.
NO_CACHE = {"SERVOMETER_CACHE_BACKEND": "off", "SERVOMETER_GRPC_PORT": "0"}


def repository_with(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the repository (files hard-linked where possible) whose model.yaml files ``edit`` changed."""
    if target.exists():
        shutil.rmtree(target)
    for folder in (path.parent for path in source.glob("*/model.yaml")):
        copy = target / folder.name
        copy.mkdir(parents=True)
        for item in folder.iterdir():
            if item.is_file() and item.name != "model.yaml":
                # Hard links, not symbolic ones: the gateway refuses variant files that link out of their folder.
                try:
                    os.link(item, copy / item.name)
                except OSError:  # another file system
                    shutil.copy2(item, copy / item.name)
        manifest = yaml.safe_load((folder / "model.yaml").read_text())
        edit(manifest)
        (copy / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target


def _no_batching(manifest: dict[str, Any]) -> None:
    manifest["batching"] = {**manifest.get("batching", {}), "max_batch_size": 0, "preferred_batch_sizes": []}


def _stripped(manifest: dict[str, Any]) -> None:
    manifest["cache"] = {**manifest.get("cache", {}), "enabled": False}
    manifest.pop("monitoring", None)


def repository_without_batching(source: Path, target: Path) -> Path:
    return repository_with(source, target, _no_batching)


def repository_stripped(source: Path, target: Path) -> Path:
    """The same models with the result cache and monitoring (drift sampling, feedback ids) off."""
    return repository_with(source, target, _stripped)


@contextlib.contextmanager
def revision(rev: str, scratch: Path) -> Iterator[Path]:
    """The code of git revision ``rev`` in a worktree under ``scratch`` (removed afterwards), to run as
    ``python -m app`` from there against this checkout's built repositories."""
    tree = scratch / f"revision-{rev}"
    if tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


@contextlib.contextmanager
def started(
    command: list[str], port: int, ready_path: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``command`` pinned to the server's core, one runtime thread, ready once ``ready_path`` answers below 500."""
    address = f"127.0.0.1:{port}"
    with running(
        ["taskset", "-c", SERVER_CPU, *command],
        log,
        f"http://{address}{ready_path}",
        env={**ONE_THREAD, **(env or {})},
        ready=lambda status: status < 500,
        start_timeout_s=120,
        stop_timeout_s=30,
    ):
        yield address


def servometer(
    models: Path, port: int, log: Path, env: dict[str, str] | None = None, entry: str = "app"
) -> contextlib.AbstractContextManager[str]:
    """Servometer with the settings in ``env`` (the cache off unless ``env`` says otherwise), started as
    ``python -m <entry>`` (a bench module that switches something off, to measure what it costs)."""
    command = [sys.executable, "-m", entry, "serve", "--no-build", "--models", str(models), "--port", str(port)]
    return started(command, port, "/v2/health/ready", log, {**NO_CACHE, **(env or {})})


def servometer_at(
    tree: Path, models: Path, port: int, log: Path, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[str]:
    """Servometer from the code in ``tree`` (another revision's worktree)."""
    command = ["/usr/bin/env", "-C", str(tree), sys.executable, "-m", "app", "serve", "--no-build",
               "--models", str(models), "--port", str(port)]  # fmt: skip
    return started(command, port, "/v2/health/ready", log, {**NO_CACHE, **(env or {})})


def naive(model_file: Path, port: int, log: Path) -> contextlib.AbstractContextManager[str]:
    command = [sys.executable, "-m", "bench.naive_server", "--model", str(model_file), "--port", str(port)]
    return started(command, port, "/docs", log)


def handwritten(model_file: Path, port: int, log: Path) -> contextlib.AbstractContextManager[str]:
    command = [sys.executable, "-m", "bench.handwritten", "--model", str(model_file), "--port", str(port)]
    return started(command, port, "/docs", log)


def bare(
    response: Path, content_type: str, header_length: int | None, port: int, log: Path
) -> contextlib.AbstractContextManager[str]:
    """The bare ASGI floor answering ``response`` to every request (ready once it answers anything)."""
    command = [sys.executable, str(ROOT / "bench" / "bare_asgi.py"), "--response", str(response),
               "--content-type", content_type, "--port", str(port)]  # fmt: skip
    if header_length is not None:
        command += ["--header-length", str(header_length)]
    return started(command, port, "/", log)
