"""How good a variant's answers are: against the true labels (classifiers) and against the reference variant.

One place for the figures that ``servometer optimize`` checks, the variant report shows, ``fastest_within`` routes
on, and shadow traffic exports.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from app.runtimes.base import RuntimeOptions
from app.runtimes.loader import load_variant_runtime
from app.schema.manifest import EvaluationSpec, ModelManifest


class Quality(BaseModel):
    """Quality of one variant's outputs on the evaluation set. Fields that do not apply to the task are None."""

    samples: int
    max_abs_error: float
    """Largest absolute difference from the reference's output, over every element."""
    accuracy: float | None = None
    macro_f1: float | None = None
    agreement: float | None = None
    """Classification: share of samples whose top-1 answer equals the reference's."""
    cosine_mean: float | None = None
    cosine_min: float | None = None
    retrieval_top5: float | None = None
    """Embeddings: for each sample, the share of its 5 nearest neighbours among the other samples that are also its
    5 nearest under the reference, averaged: whether searches return the same results."""
    similarity_spearman: float | None = None
    """Embeddings: Spearman correlation of every pairwise similarity with the reference's: whether rankings hold."""

    def loss_against(self, reference: "Quality", spec: EvaluationSpec) -> float:
        """What this variant gives up against the reference, on the measure the model names: accuracy points, or
        1 - the measure (mean cosine, or top-5 retrieval agreement)."""
        if self.accuracy is not None and reference.accuracy is not None:
            return reference.accuracy - self.accuracy
        kept = self.retrieval_top5 if spec.measure == "retrieval" else self.cosine_mean
        return 1.0 - (kept if kept is not None else 1.0)

    def passes(self, spec: EvaluationSpec) -> bool:
        """Whether ``servometer optimize`` keeps the variant: close enough to the reference's answers on the measure
        the model names."""
        if spec.task == "classification":
            return (self.agreement or 0.0) >= spec.min_agreement
        if spec.measure == "retrieval":
            return (self.retrieval_top5 if self.retrieval_top5 is not None else 0.0) >= spec.min_retrieval
        return (self.cosine_min if self.cosine_min is not None else -1.0) >= spec.min_cosine


@dataclass(frozen=True)
class EvaluationSet:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None

    @property
    def samples(self) -> int:
        return len(next(iter(self.inputs.values())))


def load_evaluation(folder: Path, manifest: ModelManifest) -> EvaluationSet:
    spec = manifest.evaluation
    if spec is None:
        raise ValueError(f"model '{manifest.name}' has no 'evaluation' block in its model.yaml")
    return EvaluationSet(
        _inputs(folder / spec.data, manifest, spec, spec.max_samples),
        None if spec.labels is None else _array(folder / spec.data, spec.labels)[: spec.max_samples],
    )


def load_calibration(folder: Path, manifest: ModelManifest) -> list[dict[str, np.ndarray]]:
    """Calibration batches of 32 samples, for static quantization."""
    spec = manifest.evaluation
    if spec is None or spec.calibration is None:
        raise ValueError(f"model '{manifest.name}' names no 'evaluation.calibration' data for static quantization")
    inputs = _inputs(folder / spec.calibration, manifest, spec, None)
    count = len(next(iter(inputs.values())))
    return [{name: array[i : i + 32] for name, array in inputs.items()} for i in range(0, count, 32)]


def _inputs(path: Path, manifest: ModelManifest, spec: EvaluationSpec, limit: int | None) -> dict[str, np.ndarray]:
    """The model file's inputs (evaluation runs the variant alone, without the processing steps around it)."""
    names = [tensor.name for tensor in manifest.model_inputs]
    return {name: _array(path, spec.inputs.get(name, name))[:limit] for name in names}


def _array(path: Path, name: str) -> np.ndarray:
    with np.load(path) as data:
        if name not in data:
            raise ValueError(f"{path} has no array '{name}' (it has {sorted(data.files)})")
        array: np.ndarray = data[name]
    return array


def measure(spec: EvaluationSpec, output: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> Quality:
    output, reference = output.astype(np.float64), reference.astype(np.float64)
    max_abs_error = float(np.max(np.abs(output - reference))) if output.size else 0.0
    if spec.task == "classification":
        predicted, expected = output.argmax(axis=1), reference.argmax(axis=1)
        assert labels is not None  # checked by EvaluationSpec
        return Quality(
            samples=len(output),
            max_abs_error=max_abs_error,
            accuracy=float(np.mean(predicted == labels)),
            macro_f1=macro_f1(labels, predicted),
            agreement=float(np.mean(predicted == expected)),
        )
    cosines = cosine(output, reference)
    return Quality(
        samples=len(output),
        max_abs_error=max_abs_error,
        cosine_mean=float(cosines.mean()),
        cosine_min=float(cosines.min()),
        retrieval_top5=neighbour_agreement(output, reference, NEIGHBOURS),
        similarity_spearman=similarity_rank_correlation(output, reference),
    )


NEIGHBOURS = 5


def _similarities(embeddings: np.ndarray) -> np.ndarray:
    flat = embeddings.reshape(len(embeddings), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    unit = flat / np.where(norms == 0, 1.0, norms)
    similarity: np.ndarray = unit @ unit.T
    return similarity


def neighbour_agreement(output: np.ndarray, reference: np.ndarray, k: int) -> float | None:
    """The mean share of each sample's ``k`` nearest others (by cosine) that the reference's embeddings also put
    among its ``k`` nearest; None with too few samples to have ``k`` others."""
    if len(output) <= k:
        return None
    found = []
    for embeddings in (output, reference):
        similarity = _similarities(embeddings)
        np.fill_diagonal(similarity, -np.inf)  # a sample is not its own neighbour
        found.append(np.argpartition(-similarity, k, axis=1)[:, :k])
    shared = [len(set(mine) & set(theirs)) for mine, theirs in zip(found[0], found[1], strict=True)]
    return float(np.mean(shared)) / k


def similarity_rank_correlation(output: np.ndarray, reference: np.ndarray) -> float | None:
    """Spearman's correlation between every pair's similarity under the output and under the reference (ranks,
    then Pearson's correlation of the ranks); None with fewer than three samples."""
    if len(output) < 3:
        return None
    upper = np.triu_indices(len(output), k=1)
    ranks = [np.argsort(np.argsort(_similarities(e)[upper])).astype(np.float64) for e in (output, reference)]
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


EVALUATION_BATCH = 32


def evaluated_output(
    manifest: ModelManifest,
    runtime: Literal["onnx", "torchscript"],
    path: Path,
    evaluation: EvaluationSet,
    options: RuntimeOptions,
    batch: int = EVALUATION_BATCH,
    samples: int | None = None,
) -> np.ndarray:
    """The evaluated output of the model file at ``path`` over the evaluation set (its first ``samples``), in
    model calls of ``batch`` samples."""
    assert manifest.evaluation is not None
    loaded = load_variant_runtime(runtime, path, options, manifest)
    try:
        output = manifest.evaluation.output
        parts = [
            loaded.infer({k: v[i : i + batch] for k, v in evaluation.inputs.items()}, [output])[output]
            for i in range(0, min(evaluation.samples, samples or evaluation.samples), batch)
        ]
    finally:
        loaded.close()
    return np.concatenate(parts)


COMPANION_SAMPLES = 8
COMPANION_TOLERANCE = 1e-4
"""How far, relative to the output's scale, a sample's answer may move with its batch companions before the
variant counts as batch-dependent: float kernels move it ~1e-7; per-batch activation scales (dynamic int8) move
it by whole percents."""


def depends_on_companions(
    manifest: ModelManifest,
    runtime: Literal["onnx", "torchscript"],
    path: Path,
    evaluation: EvaluationSet,
    options: RuntimeOptions,
    batched: np.ndarray,
) -> bool:
    """Whether the variant answers the first evaluation samples differently alone than within the batches that
    gave ``batched`` (see :data:`COMPANION_TOLERANCE`)."""
    alone = evaluated_output(manifest, runtime, path, evaluation, options, batch=1, samples=COMPANION_SAMPLES)
    together = batched[: len(alone)]
    scale = max(1.0, float(np.abs(together).max()))
    return float(np.abs(alone - together).max()) > COMPANION_TOLERANCE * scale


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity."""
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)
    result: np.ndarray = np.sum(flat_a * flat_b, axis=1) / np.where(norms == 0, 1.0, norms)
    return result


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The unweighted mean of each class's F1 over the classes present in the labels."""
    scores = []
    for cls in np.unique(labels):
        true_positive = np.sum((predicted == cls) & (labels == cls))
        precision_base, recall_base = np.sum(predicted == cls), np.sum(labels == cls)
        precision = true_positive / precision_base if precision_base else 0.0
        recall = true_positive / recall_base
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))
