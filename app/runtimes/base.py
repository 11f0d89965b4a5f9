"""The interface every runtime implements, and what they share."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from app.config import Settings
from app.runtimes.cpus import CpuAllowance, threads_per_instance

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
    """0: every CPU the process may use, unless :func:`within_allowance` has shared them out."""
    onnx_inter_op_threads: int = 0
    torch_threads: int = 0
    workers: int = 1
    """Processes sharing the CPUs (``serve --workers``)."""


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
    threads: int
    """Threads one model call computes on (intra-op)."""

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
        workers=settings.workers,
    )


def within_allowance(options: RuntimeOptions, instances: int, allowance: CpuAllowance) -> RuntimeOptions:
    """``options`` with every thread count left at 0 taken from the CPU allowance shared among ``instances``
    model instances and the workers; explicit settings win. Inter-op threads are 1: sessions run their operators
    in sequence, so a larger inter-op pool would only add idle threads."""
    threads = threads_per_instance(allowance.cpus, options.workers, instances)
    return replace(
        options,
        onnx_intra_op_threads=options.onnx_intra_op_threads or threads,
        onnx_inter_op_threads=options.onnx_inter_op_threads or 1,
        torch_threads=options.torch_threads or threads,
    )
