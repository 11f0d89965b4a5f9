"""Shared test helpers: the demo repository, a real server process, reference model runs."""

import asyncio
import contextlib
import ctypes
import functools
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from app.runtimes.base import Runtime, TensorInfo
from app.schema.manifest import load_manifest
from tests.processes import running, wait_until_ready

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_server(models: Path, *args: str, env: dict[str, str] | None = None, log: Path) -> Iterator[str]:
    """Start ``servometer serve`` on a free port, wait until ready, yield ``host:port``, then stop it by PID."""
    with server_process(models, *args, env=env, log=log) as (_, address):
        yield address


@contextlib.contextmanager
def server_process(
    models: Path, *args: str, env: dict[str, str] | None = None, log: Path, wait: bool = True
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`running_server`, also yielding the process (for its PID, memory, or signals); ``wait`` False yields
    as soon as it is started."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--port", str(port), "--models", str(models), "--no-build", *args]
    address = f"127.0.0.1:{port}"
    ready = f"http://{address}/v2/health/ready" if wait else None
    with running(command, log, ready, env=env, start_timeout_s=90, stop_signal=signal.SIGINT) as process:
        yield process, address


def wait_ready(address: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    wait_until_ready(process, f"http://{address}/v2/health/ready", log, timeout)


def copy_model(name: str, destination: Path) -> Path:
    """Copy a built demo model folder into ``destination`` (for tests that edit or break it)."""
    target = destination / name
    shutil.copytree(MODELS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def digits_images(count: int) -> np.ndarray:
    images: np.ndarray = np.load(MODELS / "digits" / "heldout.npz")["images"][:count]
    return images


def minilm_tokens(count: int) -> dict[str, np.ndarray]:
    held = np.load(MODELS / "minilm-ids" / "heldout.npz")
    return {"input_ids": held["input_ids"][:count], "attention_mask": held["attention_mask"][:count]}


def v2_json(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """An inference request document with every input as JSON data."""
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(a.shape),
                "datatype": "FP32" if a.dtype == np.float32 else "INT64",
                "data": a.tolist(),
            }
            for name, a in inputs.items()
        ]
    }


def assert_batched_equals_alone(
    answers: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], tolerance: float
) -> None:
    """``(served, run alone)`` outputs of requests that were batched with others: equal within the variant's float
    ``tolerance`` (a request given another's rows would fail: other inputs, other answers). Batch-dependent
    variants (dynamic int8) are never batched, so they too answer exactly as alone."""
    for served, alone in answers:
        for name, want in alone.items():
            np.testing.assert_allclose(served[name], want, rtol=0, atol=tolerance, err_msg=name)


def reference_outputs(model: str, variant_file: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model file directly, without the gateway: what every response must equal."""
    names = [spec.name for spec in load_manifest(MODELS / model).model_outputs]
    if variant_file.endswith(".onnx"):
        return dict(zip(names, _onnx_session(model, variant_file).run(names, inputs), strict=True))
    import torch

    with torch.inference_mode():
        result = _torchscript_module(model, variant_file)(*(torch.from_numpy(array) for array in inputs.values()))
    return {name: tensor.numpy() for name, tensor in zip(names, result, strict=True)}


@functools.cache
def _onnx_session(model: str, variant_file: str) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(MODELS / model / variant_file), providers=["CPUExecutionProvider"])


@functools.cache
def _torchscript_module(model: str, variant_file: str) -> Any:
    import torch

    return torch.jit.load(str(MODELS / model / variant_file))


class GatedRuntime:
    """A real model's runtime that records every call's inputs and can hold calls until the test releases them."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.platform = inner.platform
        self.device = inner.device
        self.threads = inner.threads
        self.calls: list[dict[str, np.ndarray]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)

    def inputs(self) -> list[TensorInfo]:
        return self.inner.inputs()

    def outputs(self) -> list[TensorInfo]:
        return self.inner.outputs()

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        self.calls.append({name: array.copy() for name, array in inputs.items()})
        self.started.release()
        self.gate.wait(60)
        return self.inner.infer(inputs, outputs)

    def close(self) -> None:
        self.inner.close()

    def batch_sizes(self) -> list[int]:
        return [len(next(iter(call.values()))) for call in self.calls]


@contextlib.contextmanager
def client_loop(address: str, step: Callable[[httpx.Client], None]) -> Iterator[None]:
    """Call ``step`` with an HTTP client for ``address`` over and over, in a thread, until the block ends."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
            while not stop.is_set():
                step(client)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def run_in_own_loop(scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    """Run ``scenario`` on an event loop of its own thread. A loop that stops turning (a coroutine spinning
    without awaiting) can never fire its own timeouts, so only another thread can see the stall: it fails the test
    after ``timeout`` seconds instead of hanging the suite."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(scenario()))
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True, name="scenario-loop")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        # Stop the spinning thread too (an exception raised inside it at its next bytecode), or it would keep a
        # core busy for the rest of the suite.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0), ctypes.py_object(SystemExit))
        thread.join(timeout)
        raise AssertionError(f"the event loop did not finish within {timeout} s: it stalled")
    if failure:
        raise failure[0]
    return outcome[0]


def resident_bytes(pid: int) -> int:
    """A process's resident memory (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
