"""The ``labels`` step: a classifier's scores into class names, and the k best classes with their probabilities."""

import numpy as np

from app.schema.steps import LabelsStep

Tensors = dict[str, np.ndarray]


class Labels:
    def __init__(self, spec: LabelsStep) -> None:
        self.spec = spec
        self._names = np.array([name.encode() for name in spec.classes], dtype=np.object_)

    def __call__(self, tensors: Tensors) -> Tensors:
        spec = self.spec
        scores = tensors[spec.input]
        if scores.ndim != 2 or scores.shape[1] != len(self._names):
            raise ValueError(
                f"'{spec.input}' has shape {list(scores.shape)}; {len(self._names)} classes need one score each"
            )
        made = {spec.output: self._names[np.argmax(scores, axis=1)]}
        if spec.top_k:
            k = min(spec.top_k, scores.shape[1])
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            probabilities = _softmax(scores) if spec.scores == "logits" else scores
            made[spec.top_classes] = self._names[best]
            made[spec.top_scores] = np.take_along_axis(probabilities, best, axis=1).astype(np.float32)
        return made


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return probabilities
