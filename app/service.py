"""The inference flow, independent of HTTP: resolve the variant, check the request, queue it for its batcher."""

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from app.batching.batcher import DynamicBatcher
from app.batching.policy import priority_level, queue_timeout
from app.errors import ClientGone, Unavailable
from app.protocol.codec import DecodedRequest, wants_binary
from app.repository.registry import Registry, Variant, VariantState
from app.telemetry.metrics import Metrics
from app.validation import RequestCheck

log = logging.getLogger(__name__)

_GONE = "the client disconnected while its request waited in the queue"


@dataclass(frozen=True, slots=True)
class _Serving:
    """What serving one loaded variant takes, prepared once."""

    batcher: DynamicBatcher
    check: RequestCheck
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InferenceResult:
    variant: Variant
    outputs: list[tuple[str, np.ndarray, bool]]
    """``(name, array, as_binary)`` in the order the response lists them."""


class InferenceService:
    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self._serving: dict[tuple[str, str], _Serving] = {}
        self.started = False

    def start(self) -> None:
        """Give every loaded variant its batcher; call from the event loop once the registry has loaded."""
        for variant in self.registry.variants():
            if variant.state is VariantState.READY and variant.runtime is not None:
                label = f"model '{variant.model_name}' variant '{variant.name}'"
                metrics = self.metrics.for_variant(variant.model_name, variant.name)
                batcher = DynamicBatcher(label, variant.runtime, variant.manifest.batching, metrics)
                batcher.start()
                outputs = tuple(spec.name for spec in variant.manifest.outputs)
                self._serving[(variant.model_name, variant.name)] = _Serving(
                    batcher, RequestCheck(variant.manifest), outputs
                )
        self.started = True

    def not_ready_reasons(self) -> list[str]:
        """Why the server is not ready; empty when it is."""
        if not self.started:
            return ["models are still loading"]
        return self.registry.required_failures()

    async def close(self, timeout: float) -> None:
        """Finish what is queued (up to ``timeout`` seconds) and stop every batcher."""
        await asyncio.gather(*(serving.batcher.close(timeout) for serving in self._serving.values()))

    def resolve(self, model: str, version: str | None) -> Variant:
        return self.registry.resolve(model, version)

    async def infer(
        self, variant: Variant, request: DecodedRequest, client_gone: asyncio.Future[None] | None = None
    ) -> InferenceResult:
        """Run one request through its variant's batcher. ``client_gone`` completes if the client disconnects."""
        serving = self._serving.get((variant.model_name, variant.name))
        if serving is None:
            detail = variant.reason or "it is still loading"
            raise Unavailable(f"model '{variant.model_name}' variant '{variant.name}' is not ready: {detail}")
        serving.check(request)
        spec = variant.manifest.batching
        level = priority_level(spec, request.parameters)
        timeout = queue_timeout(spec, request.parameters)
        wanted = request.outputs
        names = serving.outputs if wanted is None else tuple(o.name for o in wanted)
        batcher = serving.batcher
        pending = batcher.submit({t.name: t.array for t in request.inputs}, names, level, timeout)
        if client_gone is not None:
            client_gone.add_done_callback(lambda _: batcher.drop(pending, ClientGone(_GONE), "disconnected"))
        try:
            produced = await pending.future
        except asyncio.CancelledError:
            batcher.abandon(pending)
            raise
        if wanted is None:
            outputs = [(name, produced[name], wants_binary(request, None)) for name in names]
        else:
            outputs = [(o.name, produced[o.name], wants_binary(request, o)) for o in wanted]
        return InferenceResult(variant, outputs)
