"""Shadow traffic: a copy of a served request runs on a candidate variant, and whether its answer agrees with the
served one is counted (``servometer_shadow_comparisons_total``). The copy starts after the served answer exists
and is never awaited by the request: it cannot change or delay a response. Copies beyond ``MAX_IN_FLIGHT`` are
skipped (and counted) rather than queued, so a slow candidate cannot pile up work."""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import numpy as np

from app.evaluation.quality import cosine
from app.schema.manifest import ModelManifest
from app.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
ATOL = 1e-3
"""Without an evaluation block, outputs agree when every element is within this of the served one."""

Outputs = dict[str, np.ndarray]


class Shadows:
    def __init__(self, metrics: Metrics, rng: random.Random | None = None) -> None:
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def copy(self, manifest: ModelManifest, served: Outputs, run: Callable[[], Awaitable[Outputs]]) -> None:
        """Maybe send a copy to the candidate (``shadow_fraction`` of requests); returns at once."""
        routing = manifest.routing
        assert routing.candidate is not None
        if self._rng.random() >= routing.shadow_fraction:
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.metrics.shadow(manifest.name, routing.candidate, "skipped")
            return
        task = asyncio.get_running_loop().create_task(self._compare(manifest, served, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _compare(self, manifest: ModelManifest, served: Outputs, run: Callable[[], Awaitable[Outputs]]) -> None:
        candidate = manifest.routing.candidate
        assert candidate is not None
        try:
            shadowed = await run()
        except Exception as exc:  # the candidate's failure is a figure, never the client's problem
            log.debug("shadow request to %s/%s failed: %r", manifest.name, candidate, exc)
            self.metrics.shadow(manifest.name, candidate, "error")
            return
        self.metrics.shadow(manifest.name, candidate, "agree" if agrees(manifest, served, shadowed) else "disagree")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def agrees(manifest: ModelManifest, served: Outputs, shadowed: Outputs) -> bool:
    """Top-1 equal for classifiers, cosine over ``min_cosine`` for embeddings, else every output within ATOL."""
    spec = manifest.evaluation
    if spec is not None and spec.output in served and spec.output in shadowed:
        a, b = served[spec.output], shadowed[spec.output]
        if spec.task == "classification":
            return bool(np.array_equal(a.argmax(axis=-1), b.argmax(axis=-1)))
        return bool(np.all(cosine(a, b) >= spec.min_cosine))
    return all(
        name in shadowed
        and served[name].shape == shadowed[name].shape
        and np.allclose(served[name], shadowed[name], atol=ATOL)
        for name in served
    )
