"""The interface every runtime implements, and what they share."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.config import Settings

PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
"""Triton's platform name of each runtime, known before (or without) loading a file: metadata of a variant that
did not load still names it. The runtimes' own ``platform`` attributes are these values."""
BACKENDS = {"onnx": "onnxruntime", "torchscript": "pytorch"}
"""Triton's backend name of each runtime (model configuration)."""


class RuntimeLoadError(Exception):
    """A variant's file cannot be served; the message says why (shown by readiness and metadata)."""


@dataclass(frozen=True)
class RuntimeOptions:
    """The server-wide knobs runtimes read, taken from :class:`app.config.Settings`."""

    onnx_providers: tuple[str, ...] = ()
    onnx_intra_op_threads: int = 0
    onnx_inter_op_threads: int = 0
    torch_threads: int = 0


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the model file declares it (None for a dimension the file leaves symbolic)."""

    name: str
    datatype: str
    shape: tuple[int | None, ...]


class Runtime(Protocol):
    """A loaded model variant."""

    platform: str
    """Triton's platform name, e.g. ``onnxruntime_onnx``."""
    device: str
    """Where it computes, e.g. ``cpu`` or ``cuda:0``."""

    def inputs(self) -> list[TensorInfo]: ...

    def outputs(self) -> list[TensorInfo]: ...

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run one batch; returns the named outputs. Called from worker threads, never the event loop."""
        ...

    def close(self) -> None: ...


def runtime_options(settings: Settings) -> RuntimeOptions:
    """The runtime knobs of the settings, as the runtimes read them."""
    return RuntimeOptions(
        onnx_providers=tuple(settings.onnx_providers),
        onnx_intra_op_threads=settings.onnx_intra_op_threads,
        onnx_inter_op_threads=settings.onnx_inter_op_threads,
        torch_threads=settings.torch_threads,
    )
