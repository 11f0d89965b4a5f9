"""The ``python`` step: a function of the model folder's own ``process.py``.

Model code runs in the server's process with its rights, so it is off unless the operator sets
``allow_model_code``; it is read from the repository only (the management API loads folders already there, by
name), never from a request, and nothing is unpickled.
"""

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.protocol.datatypes import numpy_dtype
from app.runtimes.base import RuntimeLoadError
from app.schema.steps import STEP_PROGRAM, PythonStep

Tensors = dict[str, np.ndarray]


def load_function(spec: PythonStep, folder: Path, allowed: bool) -> Callable[[Tensors], Tensors]:
    if not allowed:
        raise RuntimeLoadError(
            f"python step '{spec.function}' runs the folder's {STEP_PROGRAM}, and model code is off "
            "(set SERVOMETER_ALLOW_MODEL_CODE=true to allow it)"
        )
    path = folder / STEP_PROGRAM
    if not path.is_file():
        raise RuntimeLoadError(f"python step '{spec.function}': the model folder has no {STEP_PROGRAM}")
    module_spec = importlib.util.spec_from_file_location(f"servometer_steps.{folder.name}", path)
    if module_spec is None or module_spec.loader is None:
        raise RuntimeLoadError(f"python step '{spec.function}': {STEP_PROGRAM} cannot be loaded")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the operator's code: any error means the model cannot serve
        raise RuntimeLoadError(f"{STEP_PROGRAM} failed to load: {type(exc).__name__}: {exc}") from None
    function = getattr(module, spec.function, None)
    if not callable(function):
        raise RuntimeLoadError(f"{STEP_PROGRAM} has no function '{spec.function}'")
    return PythonFunction(spec, function)


class PythonFunction:
    def __init__(self, spec: PythonStep, function: Callable[..., object]) -> None:
        self.spec = spec
        self._function = function

    def __call__(self, tensors: Tensors) -> Tensors:
        spec = self.spec
        made = self._function({name: tensors[name] for name in spec.inputs})
        if not isinstance(made, dict):
            raise TypeError(f"'{spec.function}' returned {type(made).__name__}, not a dict of arrays")
        rows = len(tensors[spec.inputs[0]])
        result = {}
        for output in spec.outputs:
            array = np.asarray(made.get(output.name))
            if array.ndim == 0 or len(array) != rows:
                raise ValueError(f"'{spec.function}' must return '{output.name}' with {rows} rows")
            result[output.name] = array if output.datatype == "BYTES" else array.astype(numpy_dtype(output.datatype))
        return result
