"""The input of a variant's warm-up call: one real sample where the model has one, else the smallest input its
manifest accepts.

A real sample matters: a model may fail on the generated input (a minimum length, a value it cannot take) while
serving real traffic well, and it would then be marked unavailable for nothing.
"""

import logging
import zipfile
from pathlib import Path

import numpy as np

from app.protocol.datatypes import numpy_dtype
from app.schema.manifest import ModelManifest

log = logging.getLogger(__name__)


def warmup_inputs(folder: Path, manifest: ModelManifest) -> dict[str, np.ndarray]:
    generated = {spec.name: spec.example() for spec in manifest.inputs}
    evaluation = manifest.evaluation
    if evaluation is None or any(spec.datatype == "BYTES" for spec in manifest.inputs):
        return generated
    try:
        with np.load(folder / evaluation.data, allow_pickle=False) as data:
            return {
                spec.name: np.ascontiguousarray(
                    data[evaluation.inputs.get(spec.name, spec.name)][:1], dtype=numpy_dtype(spec.datatype)
                )
                for spec in manifest.inputs
            }
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        log.warning("model '%s': warming up on a generated input, not its evaluation data: %s", manifest.name, exc)
        return generated
