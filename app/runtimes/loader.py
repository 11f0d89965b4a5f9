"""Pick and load the runtime for a variant's file."""

from pathlib import Path
from typing import Literal

from app.runtimes.base import Runtime, RuntimeLoadError, RuntimeOptions, TensorInfo
from app.schema.manifest import ModelManifest
from app.schema.tensors import TensorSpec


def tensor_info(spec: TensorSpec) -> TensorInfo:
    return TensorInfo(spec.name, spec.datatype, tuple(None if dim == -1 else dim for dim in spec.shape))


def load_variant_runtime(
    kind: Literal["onnx", "torchscript"], path: Path, options: RuntimeOptions, manifest: ModelManifest
) -> Runtime:
    """Load a variant's file with the tensors its model.yaml says the file has (formats without tensor metadata
    need them): what clients send and get, as the model's processing steps turn them."""
    inputs = [tensor_info(spec) for spec in manifest.model_inputs]
    outputs = [tensor_info(spec) for spec in manifest.model_outputs]
    return load_runtime(kind, path, options, inputs, outputs)


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
