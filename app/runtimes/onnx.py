"""ONNX Runtime: picks the best execution provider present (TensorRT, CUDA, then CPU)."""

import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.runtimes.base import PLATFORMS, RuntimeLoadError, RuntimeOptions, TensorInfo
from app.runtimes.cpus import read_allowance

log = logging.getLogger(__name__)

# Fastest first. CPU is always present and always last, so every model can fall back to it.
_PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def choose_providers(available: Sequence[str], requested: Sequence[str]) -> list[str]:
    """The providers to ask for: the requested ones that exist, or the preferred ones that exist."""
    wanted = requested or _PREFERRED_PROVIDERS
    chosen = [name for name in wanted if name in available]
    if not chosen:
        raise RuntimeLoadError(f"none of the execution providers {list(wanted)} is available (have {list(available)})")
    return chosen


def conflicting_packages(installed: Sequence[str]) -> str | None:
    """A warning when both ONNX Runtime builds are installed: they share one module and the GPU one loses."""
    names = {name.lower().replace("_", "-") for name in installed}
    if {"onnxruntime", "onnxruntime-gpu"} <= names:
        return (
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other and CUDA may be "
            "missing: pip uninstall onnxruntime onnxruntime-gpu, then install servometer[cpu] or servometer[gpu]"
        )
    return None


class OnnxRuntime:
    platform = PLATFORMS["onnx"]

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeLoadError(
                "onnxruntime is not installed: pip install 'servometer[cpu]' (or [gpu] on a CUDA machine)"
            ) from None
        session_options = ort.SessionOptions()
        # Never 0: onnxruntime would then start a thread per physical core of the host, each pinned to its core
        # (app/runtimes/cpus.py).
        self.threads = options.onnx_intra_op_threads or read_allowance().cpus
        session_options.intra_op_num_threads = self.threads
        session_options.inter_op_num_threads = options.onnx_inter_op_threads or 1
        conflict = conflicting_packages([dist.metadata["Name"] for dist in importlib.metadata.distributions()])
        if conflict:
            log.warning(conflict)
        providers = choose_providers(ort.get_available_providers(), options.onnx_providers)
        try:
            self._session: Any = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions for corrupt files
            raise RuntimeLoadError(f"onnxruntime cannot load {path.name}: {exc}") from None
        active = self._session.get_providers()
        self.device = "cpu" if active[0] == "CPUExecutionProvider" else "cuda:0"
        self.providers = active

    def inputs(self) -> list[TensorInfo]:
        return [_info(node) for node in self._session.get_inputs()]

    def outputs(self) -> list[TensorInfo]:
        return [_info(node) for node in self._session.get_outputs()]

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        results = self._session.run(list(outputs), dict(inputs))
        return dict(zip(outputs, results, strict=True))

    def close(self) -> None:
        del self._session


def _info(node: Any) -> TensorInfo:
    shape = tuple(dim if isinstance(dim, int) else None for dim in node.shape)
    return TensorInfo(node.name, _ORT_TYPES.get(node.type, node.type), shape)
