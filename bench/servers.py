"""The servers under test, each pinned to the first core, started and stopped by PID."""

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.processes import running

SERVER_CPU = "0"
ROOT = Path(__file__).resolve().parent.parent
# One core: one onnxruntime thread, or the model would fight the server for it.
ONE_THREAD = {"SERVOMETER_ONNX_INTRA_OP_THREADS": "1", "SERVOMETER_ONNX_INTER_OP_THREADS": "1"}
# The batching benchmark sends one body again and again: with the cache on it would measure cache hits.
NO_CACHE = {"SERVOMETER_CACHE_BACKEND": "off"}


def repository_without_batching(source: Path, target: Path) -> Path:
    """A copy of the repository (files hard-linked where possible) whose models all have batching off."""
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
        manifest["batching"] = {**manifest.get("batching", {}), "max_batch_size": 0, "preferred_batch_sizes": []}
        (copy / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target


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


def naive(model_file: Path, port: int, log: Path) -> contextlib.AbstractContextManager[str]:
    command = [sys.executable, str(ROOT / "bench" / "naive_server.py"), "--model", str(model_file), "--port", str(port)]
    return started(command, port, "/docs", log)
