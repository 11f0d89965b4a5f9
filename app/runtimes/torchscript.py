"""TorchScript through torch (the optional ``torch`` extra). Archives load with ``torch.jit.load``,
which reads TorchScript's own format: no ``torch.load`` of pickled modules anywhere."""

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.runtimes.base import PLATFORMS, RuntimeLoadError, RuntimeOptions, TensorInfo
from app.runtimes.cpus import read_allowance


class TorchScriptRuntime:
    platform = PLATFORMS["torchscript"]

    def __init__(self, path: Path, options: RuntimeOptions, inputs: list[TensorInfo], outputs: list[TensorInfo]):
        try:
            import torch
        except ImportError:
            raise RuntimeLoadError("TorchScript variants need PyTorch: pip install 'servometer[torch]'") from None
        self._torch = torch
        # torch's default is the host's core count, whatever the process may use (app/runtimes/cpus.py). The
        # setting is process-wide: every TorchScript variant computes on the same pool.
        self.threads = options.torch_threads or read_allowance().cpus
        torch.set_num_threads(self.threads)
        self.device = "cuda:0" if torch.cuda.is_available() else "cpu"
        try:
            # torch 2.13 deprecates TorchScript in favour of torch.export, but TorchScript archives are what
            # users bring and what this runtime exists to serve.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.load")
                self._module = torch.jit.load(str(path), map_location=self.device).eval()  # type: ignore[no-untyped-call]
        except Exception as exc:  # torch raises RuntimeError / ValueError variants for bad archives
            raise RuntimeLoadError(f"torch cannot load {path.name} as TorchScript: {exc}") from None
        # A TorchScript module takes positional tensors and returns a tensor or tuple, so names come from the
        # manifest, in its order.
        self._inputs = inputs
        self._outputs = outputs

    def inputs(self) -> list[TensorInfo]:
        return self._inputs

    def outputs(self) -> list[TensorInfo]:
        return self._outputs

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[info.name])).to(self.device) for info in self._inputs]
        with torch.inference_mode():
            result: Any = self._module(*tensors)
        if isinstance(result, dict):
            produced = {name: result[name] for name in outputs}
        else:
            values = result if isinstance(result, tuple | list) else (result,)
            if len(values) != len(self._outputs):
                raise RuntimeError(
                    f"the module returned {len(values)} tensors, the manifest lists {len(self._outputs)}"
                )
            produced = {
                info.name: value for info, value in zip(self._outputs, values, strict=True) if info.name in outputs
            }
        return {name: produced[name].detach().cpu().numpy() for name in outputs}

    def close(self) -> None:
        del self._module
