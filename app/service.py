"""The inference flow, independent of HTTP: resolve the variant, check the request, queue it for its batcher."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.batching.policy import client_owns_timeout, priority_level, queue_timeout
from app.cache.cache import ResultCache
from app.cache.front import CacheFront
from app.cache.key import cache_key
from app.errors import ClientGone, InvalidRequest, Unavailable
from app.lifecycle import Serving, ServingLifecycle
from app.monitoring.ledger import FeedbackLedger
from app.protocol.codec import DecodedRequest, wants_binary
from app.repository.registry import Registry, Variant
from app.routing.router import Router
from app.routing.shadow import Shadows
from app.telemetry.metrics import Metrics
from app.validation import most_values
from app.workers import WorkerReadiness

log = logging.getLogger(__name__)

_GONE = "the client disconnected while its request waited in the queue"


class Hangup(Protocol):
    """Where a request learns that its client disconnected (the HTTP route's disconnect watch)."""

    def on_hangup(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once if the client hangs up; a later call replaces an earlier callback."""


@dataclass(frozen=True, slots=True)
class InferenceResult:
    outputs: list[tuple[str, np.ndarray, bool]]
    """``(name, array, as_binary)`` in the order the response lists them."""
    cache: str
    """hit, miss, bypass, or off (caching disabled for the model or the server)."""
    response_id: str | None = None
    """For monitored models: the id feedback on this answer refers to."""


class InferenceService(ServingLifecycle):
    """The request flow: a request resolved to its variant, checked, answered from the cache or the variant's
    batcher, sampled for drift and given its response ids. Which variants serve: :class:`ServingLifecycle`."""

    def __init__(
        self,
        registry: Registry,
        metrics: Metrics,
        cache: ResultCache | None,
        router: Router,
        shadows: Shadows,
        workers: WorkerReadiness | None = None,
        feedback: FeedbackLedger | None = None,
        max_json_values: int = 1 << 22,
    ) -> None:
        super().__init__(registry, metrics, shadows, workers)
        self.cache = cache
        self._front = None if cache is None else CacheFront(cache)
        self.router = router
        self.feedback = feedback or FeedbackLedger()
        self.max_json_values = max_json_values

    def value_budget(self, variant: Variant) -> int:
        """Most numbers a JSON request to ``variant`` can carry and still be valid, so a body holding more is
        refused before it is parsed into Python objects (~30 bytes per number): the model's bound where its
        model.yaml gives one, and never more than ``max_json_values``."""
        serving = self._serving.get(variant.key)
        bound = serving.check.max_values if serving is not None else most_values(variant.manifest)
        return self.max_json_values if bound is None else min(bound, self.max_json_values)

    def resolve(self, model: str, version: str | None, routing_key: str | None = None) -> Variant:
        """The named variant, or for a request that names none, the one the model's routing policy picks."""
        if version is None:
            version = self.router.choose(self.registry.get(model), routing_key)
        return self.registry.resolve(model, version)

    async def infer(
        self,
        variant: Variant,
        request: DecodedRequest,
        client_gone: Hangup | None = None,
        use_cache: bool = True,
        routed: bool = False,
    ) -> InferenceResult:
        """Answer one request from the cache or its variant's batcher.

        ``client_gone`` calls back if the client disconnects; ``use_cache`` False bypasses the cache (as does the
        request parameter ``cache: false``); ``routed`` says the request named no variant, so a shadow policy
        copies it to its candidate.
        """
        serving = self._serving.get(variant.key)
        if serving is None:
            detail = variant.not_ready_reason or "it was unloaded"
            raise Unavailable(f"model '{variant.model_name}' variant '{variant.name}' is not ready: {detail}")
        serving.check(request)
        spec = variant.manifest.batching
        wanted = serving.outputs if request.outputs is None else tuple(o.name for o in request.outputs)
        monitor = self.monitors.get(variant.key)
        if monitor is not None and monitor.output not in wanted:
            # The answer's id carries the predicted class, so it is computed even when only the label is asked for.
            wanted = (*wanted, monitor.output)
        job = _ModelWork(
            serving,
            {t.name: t.array for t in request.inputs},
            wanted,
            priority_level(spec, request.parameters),
            queue_timeout(spec, request.parameters),
            client_gone,
            client_owns_timeout(spec, request.parameters, variant.manifest.objectives.latency_p99_s),
        )
        front = self._front if variant.cached else None
        if front is None:
            produced, status = await _compute(job), "off"
        elif not (use_cache and _cache_wanted(request)):
            front.bypassed(variant.model_name)
            produced, status = await _compute(job), "bypass"
        elif not front.admits(variant.model_name):
            produced, status = await _compute(job), "pass"
        else:
            key = cache_key(variant.model_name, variant.name, variant.digest, request, job.outputs)
            produced, status = await front.answer(
                variant.model_name, key, variant.digest, variant.manifest.cache.ttl_s, serving.metrics,
                lambda: _compute(job),
            )  # fmt: skip
        if routed and variant.manifest.routing.policy == "shadow":
            self._shadow(variant, job, produced)
        if request.outputs is None:
            binary = wants_binary(request, None)
            outputs = [(name, produced[name], binary) for name in job.outputs]
        else:
            outputs = [(o.name, produced[o.name], wants_binary(request, o)) for o in request.outputs]
        if monitor is None:
            return InferenceResult(outputs, status)
        monitor.observe(job.inputs, produced)
        assert variant.manifest.evaluation is not None
        assert variant.manifest.monitoring is not None
        ids = self.feedback.issue_for(
            variant.model_name,
            variant.name,
            variant.manifest.evaluation.task == "classification",
            produced[monitor.output],
            variant.manifest.monitoring.feedback_ttl_s,
        )
        return InferenceResult(outputs, status, ids)

    async def record_feedback(self, model: str, response_id: str, label: int | None, relevant: bool | None) -> bool:
        """Score an earlier answer; returns whether it was right. Raises a 4xx error for bad feedback."""
        manifest = self.registry.get(model).manifest
        if manifest is None or manifest.monitoring is None:
            raise InvalidRequest(f"model '{model}' takes no feedback: its model.yaml has no 'monitoring' block")
        answer = await self.feedback.record(model, response_id, label, relevant, manifest.monitoring.feedback_window)
        correct = label == answer.predicted if answer.predicted is not None else bool(relevant)
        samples, accuracy, f1 = self.feedback.live(model, answer.variant)
        self.metrics.set_live(model, answer.variant, correct, samples, accuracy, f1)
        return correct

    def _shadow(self, variant: Variant, job: "_ModelWork", produced: dict[str, np.ndarray]) -> None:
        manifest = variant.manifest
        candidate = self._serving.get((variant.model_name, manifest.routing.candidate or ""))
        if candidate is None:  # not loaded (or failed to): nothing to compare with
            self.metrics.shadow(variant.model_name, manifest.routing.candidate or "", "skipped")
            return
        copy = _ModelWork(candidate, job.inputs, job.outputs, job.level, None, None, False)
        self.shadows.copy(manifest, produced, lambda: _compute(copy))


@dataclass(frozen=True, slots=True)
class _ModelWork:
    """One request's model work, ready for its variant's batcher."""

    serving: Serving
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    level: int
    timeout: float | None
    client_gone: Hangup | None
    client_timeout: bool
    """``timeout`` is the client's own (its expiry is not the server's fault)."""


async def _compute(job: _ModelWork) -> dict[str, np.ndarray]:
    batcher = job.serving.batcher
    pending = batcher.submit(job.inputs, job.outputs, job.level, job.timeout, job.client_timeout)
    if job.client_gone is not None:
        job.client_gone.on_hangup(lambda: batcher.drop(pending, ClientGone(_GONE), "disconnected"))
    try:
        return await pending.future
    except asyncio.CancelledError:
        batcher.abandon(pending)
        raise


def _cache_wanted(request: DecodedRequest) -> bool:
    if "cache" not in request.parameters:  # nearly every request: no lookup of a default, no type check
        return True
    value = request.parameters["cache"]
    if not isinstance(value, bool):
        raise InvalidRequest(f"parameter 'cache' must be true or false, got {value!r}")
    return value
