"""Which variants serve, and their lifecycle: batchers started and warmed up before a variant turns ready, models
loaded and unloaded through the management API (one at a time, the loaded version serving until its successor
is warm), readiness published to the other workers, and the drain on shutdown."""

import asyncio
import logging
from dataclasses import dataclass

from app.batching.batcher import DynamicBatcher
from app.errors import Unavailable
from app.monitoring.drift import DriftMonitor
from app.monitoring.reference import load_reference
from app.repository.registry import ModelEntry, Registry, VariantState
from app.repository.warmup import warmup_inputs
from app.routing.shadow import Shadows
from app.schema.manifest import REFERENCE_FILE
from app.telemetry.metrics import Metrics
from app.telemetry.views import VariantMetrics
from app.validation import RequestCheck
from app.workers import WorkerReadiness

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Serving:
    """What serving one loaded variant takes, prepared once."""

    batcher: DynamicBatcher
    check: RequestCheck
    outputs: tuple[str, ...]
    metrics: VariantMetrics


class ServingLifecycle:
    """The variants that serve (``_serving``: their batchers and request checks) and how they come and go."""

    def __init__(self, registry: Registry, metrics: Metrics, shadows: Shadows, workers: WorkerReadiness | None) -> None:
        self.registry = registry
        self.metrics = metrics
        self.shadows = shadows
        self.workers = workers or WorkerReadiness(None, 1)
        self._serving: dict[tuple[str, str], Serving] = {}
        self.monitors: dict[tuple[str, str], DriftMonitor] = {}
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

    async def _prepare(self, entry: ModelEntry) -> dict[tuple[str, str], Serving]:
        """A running, warmed-up batcher for every loaded variant of ``entry``; a variant whose warm-up call fails
        is marked unavailable with the model's error."""
        serving: dict[tuple[str, str], Serving] = {}
        for variant in entry.variants.values():
            if variant.state is not VariantState.LOADED or variant.runtime is None or variant.pipeline is None:
                continue
            label = f"model '{variant.model_name}' variant '{variant.name}'"
            metrics = self.metrics.for_variant(variant.model_name, variant.name)
            alone = variant.spec.batch_dependent
            batcher = DynamicBatcher(label, variant.pipeline, variant.manifest.batching, metrics, alone=alone)
            batcher.start()
            outputs = tuple(spec.name for spec in variant.manifest.outputs)
            try:
                await batcher.warm_up(warmup_inputs(self.registry.root / entry.name, variant.manifest), outputs)
            except Exception as exc:  # a model that cannot answer one call is not served
                await batcher.close(0)
                await asyncio.to_thread(variant.runtime.close)
                variant.runtime = variant.pipeline = None
                # The model's own message (which names the runtime's source files) goes to the log, not to clients.
                reason = f"its warm-up call failed ({type(exc).__name__}; the server's log has the error)"
                variant.state, variant.reason = VariantState.UNAVAILABLE, reason
                log.error("%s is unavailable: its warm-up call failed: %s", label, exc)
                continue
            serving[(variant.model_name, variant.name)] = Serving(
                batcher, RequestCheck(variant.manifest), outputs, metrics
            )
        return serving

    def _install(self, entry: ModelEntry, serving: dict[tuple[str, str], Serving]) -> None:
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

    def _retire(self, model: str) -> list[Serving]:
        for key in [key for key in self.monitors if key[0] == model]:
            del self.monitors[key]
        keys = [key for key in self._serving if key[0] == model]
        return [self._serving.pop(key) for key in keys]

    async def _close_retired(self, retired: list[Serving], entry: ModelEntry | None, timeout: float) -> None:
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
