"""Pick and load the runtime for a variant's file."""

from pathlib import Path
from typing import Literal

from app.runtimes.base import Runtime, RuntimeLoadError, RuntimeOptions, TensorInfo


def load_runtime(
    kind: Literal["onnx", "torchscript"],
    path: Path,
    options: RuntimeOptions,
    inputs: list[TensorInfo],
    outputs: list[TensorInfo],
) -> Runtime:
    """Load ``path`` with the named runtime; ``inputs`` / ``outputs`` describe it for formats that do not."""
    if not path.is_file():
        raise RuntimeLoadError(f"model file {path} does not exist (run `servometer models build`)")
    if kind == "onnx":
        from app.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(path, options)
    from app.runtimes.torchscript import TorchScriptRuntime

    return TorchScriptRuntime(path, options, inputs, outputs)
