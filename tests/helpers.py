"""Shared test helpers: the demo repository, a real server process, reference model runs."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from app.repository.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(models: Path, *args: str, env: dict[str, str] | None = None, log: Path) -> Iterator[str]:
    """Start ``servometer serve`` on a free port, wait until ready, yield ``host:port``, then stop it by PID."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--models", str(models), "--no-build", *args]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    address = f"127.0.0.1:{port}"
    try:
        wait_ready(address, process, log)
        yield address
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(address: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{address}/v2/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()}")


def copy_model(name: str, destination: Path) -> Path:
    """Copy a built demo model folder into ``destination`` (for tests that edit or break it)."""
    target = destination / name
    shutil.copytree(MODELS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def digits_images(count: int) -> np.ndarray:
    images: np.ndarray = np.load(MODELS / "digits" / "heldout.npz")["images"][:count]
    return images


def minilm_tokens(count: int) -> dict[str, np.ndarray]:
    held = np.load(MODELS / "minilm" / "heldout.npz")
    return {"input_ids": held["input_ids"][:count], "attention_mask": held["attention_mask"][:count]}


def reference_outputs(model: str, variant_file: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model file directly, without the gateway: what every response must equal."""
    path = MODELS / model / variant_file
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs), strict=True))
    import torch

    module = torch.jit.load(str(path))
    with torch.inference_mode():
        result = module(*(torch.from_numpy(array) for array in inputs.values()))
    names = [spec.name for spec in load_manifest(MODELS / model).outputs]
    return {name: tensor.numpy() for name, tensor in zip(names, result, strict=True)}
