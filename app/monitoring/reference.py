"""Reference statistics: what a model's inputs and predictions look like on its evaluation set, stored by the
build (``servometer optimize``) as ``reference-stats.json`` beside ``model.yaml``, for drift to compare with.

Float inputs are summarised by their values (all elements, in ten quantile bins) and each sample's mean; integer
inputs with a sequence dimension (token ids, attention masks) by each sample's length (non-zero elements).
Predictions are class frequencies for classifiers and embedding norms otherwise.
"""

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from app.evaluation.quality import evaluated_output, load_evaluation
from app.monitoring.statistics import bin_edges, shares
from app.runtimes.base import RuntimeOptions
from app.schema.manifest import REFERENCE_FILE, ModelManifest

FORMAT_VERSION = 1
MAX_SAMPLE_SUMMARIES = 512


class Distribution(BaseModel):
    feature: str
    """An input's name, or ``prediction``."""
    kind: Literal["values", "lengths", "classes", "norms"]
    edges: list[float]
    shares: list[float]
    mean: float
    variance: float
    per_sample: list[float]
    """Each sample's summary (mean value, length, class, norm), for the two-sample test."""


class ReferenceStats(BaseModel):
    format: int = FORMAT_VERSION
    model: str
    variant: str
    samples: int
    inputs: list[Distribution]
    prediction: Distribution


def summarise(kind: str, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values to bin, one summary per sample)`` of a batch, the same way for reference and live data."""
    if kind == "values":
        flat = array.reshape(len(array), -1).astype(np.float64)
        return flat.ravel(), flat.mean(axis=1)
    if kind == "lengths":
        lengths = np.count_nonzero(array.reshape(len(array), -1), axis=1).astype(np.float64)
        return lengths, lengths
    if kind == "classes":
        classes = array.reshape(len(array), -1).argmax(axis=1).astype(np.float64)
        return classes, classes
    norms = np.linalg.norm(array.reshape(len(array), -1).astype(np.float64), axis=1)
    return norms, norms


def input_kind(array: np.ndarray) -> Literal["values", "lengths"]:
    return "lengths" if array.dtype.kind in "iu" and array.ndim >= 2 else "values"


def _distribution(feature: str, kind: Literal["values", "lengths", "classes", "norms"], array: np.ndarray,
                  classes: int = 0) -> Distribution:  # fmt: skip
    binned, per_sample = summarise(kind, array)
    edges = [k + 0.5 for k in range(classes - 1)] if kind == "classes" else bin_edges(binned)
    return Distribution(
        feature=feature, kind=kind, edges=edges, shares=shares(binned, edges), mean=float(binned.mean()),
        variance=float(binned.var()), per_sample=[float(v) for v in per_sample[:MAX_SAMPLE_SUMMARIES]],
    )  # fmt: skip


def compute_reference(folder: Path, manifest: ModelManifest, options: RuntimeOptions) -> ReferenceStats:
    """Run the reference variant on the evaluation set and summarise its inputs and predictions."""
    assert manifest.evaluation is not None
    evaluation = load_evaluation(folder, manifest)
    reference = next(v for v in manifest.variants if v.name == manifest.reference)
    predicted = evaluated_output(manifest, reference.runtime, folder / reference.file, evaluation, options)
    classification = manifest.evaluation.task == "classification"
    classes = predicted.reshape(len(predicted), -1).shape[1]
    prediction = _distribution("prediction", "classes" if classification else "norms", predicted, classes)
    return ReferenceStats(
        model=manifest.name,
        variant=reference.name,
        samples=evaluation.samples,
        inputs=[_distribution(name, input_kind(array), array) for name, array in evaluation.inputs.items()],
        prediction=prediction,
    )


def write_reference(folder: Path, manifest: ModelManifest, options: RuntimeOptions) -> ReferenceStats:
    stats = compute_reference(folder, manifest, options)
    (folder / REFERENCE_FILE).write_text(stats.model_dump_json(indent=1) + "\n")
    return stats


def load_reference(folder: Path) -> ReferenceStats | None:
    path = folder / REFERENCE_FILE
    if not path.is_file():
        return None
    return ReferenceStats.model_validate_json(path.read_text())
