"""A variant's model call with its processing steps: what the batcher runs for each batch, on the variant's thread.

Steps before the model run on the whole batch (text tokenized in one call), then the model runs in one call, or,
with a token budget, in calls of texts of similar length each padded to its own longest; the steps after it run
on the joined outputs. Every sample's answer equals running it alone: padding is masked, and rows are put back in
their order.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import StepFailed
from app.processing.budget import plan_calls, tokens_computed
from app.processing.custom import load_function
from app.processing.labels import Labels
from app.processing.tokenize import Tokenize
from app.runtimes.base import Runtime
from app.schema.manifest import BatchingSpec
from app.schema.steps import STEP_PROGRAM, LabelsStep, Step, StepsSpec, TokenizeStep

log = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
StepFunction = Callable[[Tensors], Tensors]


@dataclass(frozen=True, slots=True)
class Computed:
    """A batch's outputs and where its time went."""

    outputs: Tensors
    compute_s: float
    """In the model's own calls."""
    before_s: float = 0.0
    after_s: float = 0.0
    calls: int = 1
    tokens_sent: int = 0
    """Text models: the tokens of the batch's texts."""
    tokens_computed: int = 0
    """Text models: the tokens the model calls computed, padding included."""


class Pipeline:
    def __init__(
        self,
        runtime: Runtime,
        steps: StepsSpec | None = None,
        folder: Path = Path("."),
        batching: BatchingSpec | None = None,
        allow_model_code: bool = False,
    ) -> None:
        """``runtime`` with the ``steps`` of the model in ``folder`` (their files are read from there); none: the
        runtime alone. Texts are cut into calls by the token budget of ``batching``."""
        self.runtime = runtime
        steps = steps or StepsSpec()
        self._before = [(step, _make(step, folder, allow_model_code)) for step in steps.before]
        self._after = [(step, _make(step, folder, allow_model_code)) for step in steps.after]
        # Without steps the runtime is called as it is, and need not describe itself.
        self._fed = [info.name for info in runtime.inputs()] if steps else []
        self._returns = {info.name for info in runtime.outputs()} if steps else set()
        self._after_reads = [name for step in steps.after for name in step.reads() if name in self._returns]
        tokenizers = [step for step in steps.before if isinstance(step, TokenizeStep)]
        self._text = tokenizers[0] if tokenizers else None
        batching = batching or BatchingSpec()
        self._budget, self._call_cost = batching.max_batch_tokens, batching.call_cost_tokens
        self.fingerprint = _fingerprint(steps, folder)
        """Changes when the steps or their files do: part of the variant's digest, so cached answers follow."""

    def run(self, inputs: Tensors, outputs: tuple[str, ...]) -> Computed:
        """The named outputs for a batch of ``inputs``. Called from the variant's threads, never the event loop."""
        if not self._before and not self._after:
            started = time.perf_counter()
            produced = self.runtime.infer(inputs, outputs)
            return Computed(produced, time.perf_counter() - started)
        started = time.perf_counter()
        tensors = dict(inputs)
        for step, function in self._before:
            tensors.update(_apply(step, function, tensors, "before the model"))
        before_s = time.perf_counter() - started
        wanted = [name for name in dict.fromkeys((*outputs, *self._after_reads)) if name in self._returns]
        produced, calls, sent, computed = self._model(tensors, wanted)
        compute_s = time.perf_counter() - started - before_s
        tensors.update(produced)
        for step, function in self._after:
            tensors.update(_apply(step, function, tensors, "after the model"))
        after_s = time.perf_counter() - started - before_s - compute_s
        return Computed({name: tensors[name] for name in outputs}, compute_s, before_s, after_s, calls, sent, computed)

    def _model(self, tensors: Tensors, wanted: list[str]) -> tuple[Tensors, int, int, int]:
        if not wanted:  # only what the steps make was asked for (a text's token count): no model call
            return {}, 0, 0, 0
        feeds = {name: tensors[name] for name in self._fed}
        if self._text is None:
            return self.runtime.infer(feeds, wanted), 1, 0, 0
        lengths = tensors[self._text.count]
        calls = plan_calls(lengths, self._budget, self._call_cost)
        sent, computed = int(lengths.sum()), tokens_computed(lengths, calls)
        if len(calls) == 1:
            width = int(lengths.max(initial=1))
            return self.runtime.infer(self._trimmed(feeds, slice(None), width), wanted), 1, sent, computed
        joined: Tensors = {}
        for rows in calls:
            part = self.runtime.infer(self._trimmed(feeds, rows, int(lengths[rows].max())), wanted)
            for name, array in part.items():
                if name not in joined:
                    joined[name] = np.empty((len(lengths), *array.shape[1:]), dtype=array.dtype)
                joined[name][rows] = array
        return joined, len(calls), sent, computed

    def _trimmed(self, feeds: Tensors, rows: np.ndarray | slice, width: int) -> Tensors:
        """``rows`` of the feeds, token tensors cut to ``width`` (the call's longest text)."""
        assert self._text is not None
        padded = (self._text.ids, self._text.mask)
        return {name: array[rows, :width] if name in padded else array[rows] for name, array in feeds.items()}


def _make(step: Step, folder: Path, allow_model_code: bool) -> StepFunction:
    if isinstance(step, TokenizeStep):
        return Tokenize(step, folder)
    if isinstance(step, LabelsStep):
        return Labels(step)
    return load_function(step, folder, allow_model_code)


def _apply(step: Step, function: StepFunction, tensors: Tensors, where: str) -> Tensors:
    try:
        return function(tensors)
    except Exception as exc:
        # Its own message (which may name the server's files) goes to the log; the client learns which step.
        log.error("processing step '%s' %s failed: %s", step.kind, where, exc, exc_info=exc)
        raise StepFailed(
            f"processing step '{step.kind}' {where} failed on this request "
            f"({type(exc).__name__}; the server's log has the error)"
        ) from exc


def _fingerprint(steps: StepsSpec, folder: Path) -> str:
    digest = hashlib.sha256(steps.model_dump_json().encode())
    for step in (*steps.before, *steps.after):
        name = step.file if isinstance(step, TokenizeStep) else STEP_PROGRAM if step.kind == "python" else None
        if name is not None and (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    return digest.hexdigest()
