"""The inference flow, independent of HTTP: resolve the variant, check the request, queue it for its batcher."""

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from app.batching.batcher import DynamicBatcher
from app.batching.policy import client_owns_timeout, priority_level, queue_timeout
from app.cache.cache import ResultCache
from app.cache.key import cache_key
from app.cache.single_flight import SingleFlight
from app.errors import ClientGone, InvalidRequest, ModelFailed, Unavailable
from app.monitoring.drift import DriftMonitor
from app.monitoring.feedback import FeedbackLedger
from app.monitoring.reference import load_reference
from app.protocol.codec import DecodedRequest, wants_binary
from app.repository.registry import ModelEntry, Registry, Variant, VariantState
from app.repository.warmup import warmup_inputs
from app.routing.router import Router
from app.routing.shadow import Shadows
from app.schema.manifest import REFERENCE_FILE
from app.telemetry.metrics import Metrics, VariantMetrics
from app.validation import RequestCheck, most_values
from app.workers import WorkerReadiness

log = logging.getLogger(__name__)

_GONE = "the client disconnected while its request waited in the queue"
# Errors an identical request would get too, so single-flight followers share them; any other failure of the
# leader (its client left, its queue timeout) is its own, and a follower computes for itself.
_SHARED_ERRORS = (ModelFailed, InvalidRequest)


@dataclass(frozen=True, slots=True)
class _Serving:
    """What serving one loaded variant takes, prepared once."""

    batcher: DynamicBatcher
    check: RequestCheck
    outputs: tuple[str, ...]
    metrics: VariantMetrics


@dataclass(frozen=True, slots=True)
class InferenceResult:
    outputs: list[tuple[str, np.ndarray, bool]]
    """``(name, array, as_binary)`` in the order the response lists them."""
    cache: str
    """hit, miss, bypass, or off (caching disabled for the model or the server)."""
    response_id: str | None = None
    """For monitored models: the id feedback on this answer refers to."""


class InferenceService:
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
        self.registry = registry
        self.workers = workers or WorkerReadiness(None, 1)
        self.metrics = metrics
        self.cache = cache
        self.router = router
        self.shadows = shadows
        self._flights = SingleFlight()
        self._serving: dict[tuple[str, str], _Serving] = {}
        self.monitors: dict[tuple[str, str], DriftMonitor] = {}
        self.feedback = feedback or FeedbackLedger()
        self.max_json_values = max_json_values
        self.started = False
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Task[None] | None = None
        self._lifecycle = asyncio.Lock()
        """One start, load or unload at a time: two of them would each retire what the other installs."""

    async def start(self) -> None:
        """Give every loaded variant its batcher and warm it up; call from the event loop once the registry has
        loaded. Each model's variants turn ready as soon as its warm-up calls have returned."""
        self._loop = asyncio.get_running_loop()
        async with self._lifecycle:
            await asyncio.gather(*(self._start_model(entry) for entry in self.registry.models()))
            self.started = True
        self.readiness_changed()

    async def _start_model(self, entry: ModelEntry) -> None:
        self._install(entry, await self._prepare(entry))

    async def _prepare(self, entry: ModelEntry) -> dict[tuple[str, str], _Serving]:
        """A running, warmed-up batcher for every loaded variant of ``entry``; a variant whose warm-up call fails
        is marked unavailable with the model's error."""
        serving: dict[tuple[str, str], _Serving] = {}
        for variant in entry.variants.values():
            if variant.state is not VariantState.LOADED or variant.runtime is None:
                continue
            label = f"model '{variant.model_name}' variant '{variant.name}'"
            metrics = self.metrics.for_variant(variant.model_name, variant.name)
            alone = variant.spec.batch_dependent
            batcher = DynamicBatcher(label, variant.runtime, variant.manifest.batching, metrics, alone=alone)
            batcher.start()
            outputs = tuple(spec.name for spec in variant.manifest.outputs)
            try:
                await batcher.warm_up(warmup_inputs(self.registry.root / entry.name, variant.manifest), outputs)
            except Exception as exc:  # a model that cannot answer one call is not served
                await batcher.close(0)
                await asyncio.to_thread(variant.runtime.close)
                variant.runtime = None
                # The model's own message (which names the runtime's source files) goes to the log, not to clients.
                reason = f"its warm-up call failed ({type(exc).__name__}; the server's log has the error)"
                variant.state, variant.reason = VariantState.UNAVAILABLE, reason
                log.error("%s is unavailable: its warm-up call failed: %s", label, exc)
                continue
            serving[(variant.model_name, variant.name)] = _Serving(
                batcher, RequestCheck(variant.manifest), outputs, metrics
            )
        return serving

    def _install(self, entry: ModelEntry, serving: dict[tuple[str, str], _Serving]) -> None:
        """Route requests to the prepared batchers: from here on the variants are ready."""
        self._serving.update(serving)
        for key in serving:
            entry.variants[key[1]].state = VariantState.READY
        manifest = entry.manifest
        if manifest is None or manifest.monitoring is None or manifest.evaluation is None:
            return
        reference = load_reference(self.registry.root / entry.name)
        if reference is None:
            log.warning("model '%s': no %s, so no drift scores (run its build)", entry.name, REFERENCE_FILE)
            return
        spec = manifest.monitoring
        for variant in entry.variants.values():
            self.monitors[(entry.name, variant.name)] = DriftMonitor(
                reference, manifest.evaluation.output, spec.sample_rate, spec.window, spec.interval_s
            )

    async def load_model(self, name: str, drain_timeout: float) -> ModelEntry:
        """Load (or reload) a model from its repository folder. If it fails, the loaded version keeps serving; the
        new one takes over only once its batchers are warmed up."""
        async with self._lifecycle:
            return await self._load_model(name, drain_timeout)

    async def _load_model(self, name: str, drain_timeout: float) -> ModelEntry:
        entry, previous = await asyncio.to_thread(self.registry.reload, name)
        serving = await self._prepare(entry) if entry.manifest is not None else {}
        failure = entry.error if entry.manifest is None else ""
        if entry.manifest is not None:
            default = entry.variants[entry.manifest.default]
            if (name, default.name) not in serving:
                failure = f"default variant '{default.name}': {default.not_ready_reason}"
        if failure:
            await asyncio.gather(*(prepared.batcher.close(0) for prepared in serving.values()))
            await asyncio.to_thread(Registry.close_entry, entry)
            kept = " the loaded version keeps serving" if previous is not None else ""
            raise Unavailable(f"model '{name}' did not load:{kept} {failure}")
        retired = self._retire(name)
        self.registry.install(entry)
        self._install(entry, serving)
        self.readiness_changed()
        await self._close_retired(retired, previous, drain_timeout)
        return entry

    async def unload_model(self, name: str, drain_timeout: float) -> ModelEntry:
        """Stop serving a model: what is queued for it finishes (up to ``drain_timeout``), then it is closed."""
        async with self._lifecycle:
            entry = self.registry.remove(name)
            self.readiness_changed()
            await self._close_retired(self._retire(name), entry, drain_timeout)
            for variant in entry.variants.values():
                self.metrics.register_variant(name, variant.name, False)
            return entry

    def _retire(self, model: str) -> list[_Serving]:
        for key in [key for key in self.monitors if key[0] == model]:
            del self.monitors[key]
        keys = [key for key in self._serving if key[0] == model]
        return [self._serving.pop(key) for key in keys]

    async def _close_retired(self, retired: list[_Serving], entry: ModelEntry | None, timeout: float) -> None:
        await asyncio.gather(*(serving.batcher.close(timeout) for serving in retired))
        if entry is not None:
            await asyncio.to_thread(Registry.close_entry, entry)

    def begin_drain(self, timeout_s: float) -> None:
        """Shutting down (called from the signal handler, so it only schedules): readiness turns false, and the
        batchers finish what is queued within ``timeout_s`` and answer the rest 503, before uvicorn's own deadline
        would cut the connections."""
        self.draining = True
        self.readiness_changed()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_once, timeout_s)

    def _close_once(self, timeout: float) -> asyncio.Task[None]:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_batchers(timeout))
        return self._closing

    def not_ready_reasons(self) -> list[str]:
        """Why the server is not ready (this worker, or with several, another); empty when it is."""
        reasons = self._own_not_ready_reasons()
        others = self.workers.others_not_ready()
        return reasons or ([others] if others else [])

    def _own_not_ready_reasons(self) -> list[str]:
        if self.draining:
            return ["the server is shutting down"]
        if not self.started:
            return ["models are still loading"]
        return self.registry.required_failures()

    def readiness_changed(self) -> None:
        """Publish this worker's readiness to the others (models loaded or unloaded, draining)."""
        self.workers.publish(not self._own_not_ready_reasons())

    async def close(self, timeout: float) -> None:
        """Finish what is queued (up to ``timeout`` seconds) and stop every batcher."""
        await self._close_once(timeout)

    async def _close_batchers(self, timeout: float) -> None:
        await self.shadows.close()
        await asyncio.gather(*(serving.batcher.close(timeout) for serving in self._serving.values()))

    def value_budget(self, variant: Variant) -> int:
        """Most numbers a JSON request to ``variant`` can carry and still be valid, so a body holding more is
        refused before it is parsed into Python objects (~30 bytes per number): the model's bound where its
        model.yaml gives one, and never more than ``max_json_values``."""
        serving = self._serving.get((variant.model_name, variant.name))
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
        client_gone: asyncio.Future[None] | None = None,
        use_cache: bool = True,
        routed: bool = False,
    ) -> InferenceResult:
        """Answer one request from the cache or its variant's batcher.

        ``client_gone`` completes if the client disconnects; ``use_cache`` False bypasses the cache (as does the
        request parameter ``cache: false``); ``routed`` says the request named no variant, so a shadow policy
        copies it to its candidate.
        """
        serving = self._serving.get((variant.model_name, variant.name))
        if serving is None:
            detail = variant.not_ready_reason or "it was unloaded"
            raise Unavailable(f"model '{variant.model_name}' variant '{variant.name}' is not ready: {detail}")
        serving.check(request)
        spec = variant.manifest.batching
        wanted = serving.outputs if request.outputs is None else tuple(o.name for o in request.outputs)
        monitor = self.monitors.get((variant.model_name, variant.name))
        if monitor is not None and monitor.output not in wanted:
            # The answer's id carries the predicted class, so it is computed even when only the label is asked for.
            wanted = (*wanted, monitor.output)
        job = _Job(
            serving,
            {t.name: t.array for t in request.inputs},
            wanted,
            priority_level(spec, request.parameters),
            queue_timeout(spec, request.parameters),
            client_gone,
            client_owns_timeout(spec, request.parameters, variant.manifest.objectives.latency_p99_s),
        )
        # An answer that depends on its batch companions is never cached: computed alone it is right for its
        # client only, and the cache would serve it to others (and, through Redis, to every replica).
        cache = self.cache if variant.manifest.cache.enabled and not variant.spec.batch_dependent else None
        if cache is None:
            produced, status = await _compute(job), "off"
        elif not (use_cache and _cache_wanted(request)):
            cache.metrics.lookup(variant.model_name, "bypass")
            produced, status = await _compute(job), "bypass"
        else:
            produced, status = await self._through_cache(cache, variant, request, job)
        if routed and variant.manifest.routing.policy == "shadow":
            self._shadow(variant, job, produced)
        if request.outputs is None:
            outputs = [(name, produced[name], wants_binary(request, None)) for name in job.outputs]
        else:
            outputs = [(o.name, produced[o.name], wants_binary(request, o)) for o in request.outputs]
        if monitor is None:
            return InferenceResult(outputs, status)
        monitor.observe(job.inputs, produced)
        return InferenceResult(outputs, status, self._issue_response_ids(variant, produced[monitor.output]))

    def _issue_response_ids(self, variant: Variant, scored: np.ndarray) -> str:
        """One id per sample, comma-separated in the samples' order: feedback judges each answer on its own."""
        manifest = variant.manifest
        assert manifest.evaluation is not None
        assert manifest.monitoring is not None
        samples = len(scored)
        if manifest.evaluation.task == "classification":
            predictions: list[int | None] = [int(c) for c in scored.reshape(samples, -1).argmax(axis=1)]
        else:
            predictions = [None] * samples
        ttl = manifest.monitoring.feedback_ttl_s
        return ",".join(self.feedback.issue(variant.model_name, variant.name, p, ttl) for p in predictions)

    async def evaluate_drift(self, now: float) -> None:
        """Recompute the drift scores of every monitor whose interval has passed (in a worker thread)."""
        for key, monitor in list(self.monitors.items()):
            if now - monitor.scored_at < monitor.interval_s:
                continue
            monitor.scored_at = now
            scores = await asyncio.to_thread(monitor.scores)
            self.metrics.set_drift(key[0], key[1], monitor.samples, scores)

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

    def _shadow(self, variant: Variant, job: "_Job", produced: dict[str, np.ndarray]) -> None:
        manifest = variant.manifest
        candidate = self._serving.get((variant.model_name, manifest.routing.candidate or ""))
        if candidate is None:  # not loaded (or failed to): nothing to compare with
            self.metrics.shadow(variant.model_name, manifest.routing.candidate or "", "skipped")
            return
        copy = _Job(candidate, job.inputs, job.outputs, job.level, None, None, False)
        self.shadows.copy(manifest, produced, lambda: _compute(copy))

    async def _through_cache(
        self, cache: ResultCache, variant: Variant, request: DecodedRequest, job: "_Job"
    ) -> tuple[dict[str, np.ndarray], str]:
        key = cache_key(variant.model_name, variant.name, variant.digest, request, job.outputs)
        started = time.perf_counter()
        cached = await cache.get(variant.model_name, key, variant.digest)
        job.serving.metrics.cache_lookup(cached is not None, time.perf_counter() - started)
        if cached is not None:
            return cached, "hit"
        produced, shared = await self._flights.run(key, lambda: _compute(job), _SHARED_ERRORS)
        if shared:
            cache.metrics.coalesced(variant.model_name)
        else:
            cache.put(key, variant.digest, produced, variant.manifest.cache.ttl_s)
        return produced, "miss"


@dataclass(frozen=True, slots=True)
class _Job:
    """One request's model work, ready for its variant's batcher."""

    serving: _Serving
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    level: int
    timeout: float | None
    client_gone: asyncio.Future[None] | None
    client_timeout: bool
    """``timeout`` is the client's own (its expiry is not the server's fault)."""


async def _compute(job: _Job) -> dict[str, np.ndarray]:
    batcher = job.serving.batcher
    pending = batcher.submit(job.inputs, job.outputs, job.level, job.timeout, job.client_timeout)
    if job.client_gone is not None:
        job.client_gone.add_done_callback(lambda _: batcher.drop(pending, ClientGone(_GONE), "disconnected"))
    try:
        return await pending.future
    except asyncio.CancelledError:
        batcher.abandon(pending)
        raise


def _cache_wanted(request: DecodedRequest) -> bool:
    value = request.parameters.get("cache", True)
    if not isinstance(value, bool):
        raise InvalidRequest(f"parameter 'cache' must be true or false, got {value!r}")
    return value
