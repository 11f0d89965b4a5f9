"""The inference flow, independent of HTTP: resolve the variant, check the request, run the model."""

import logging
from dataclasses import dataclass

import anyio.to_thread
import numpy as np

from app.errors import ModelFailed, Unavailable
from app.protocol.codec import DecodedRequest, wants_binary
from app.repository.registry import Registry, Variant, VariantState
from app.validation import check_request

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InferenceResult:
    variant: Variant
    outputs: list[tuple[str, np.ndarray, bool]]
    """``(name, array, as_binary)`` in the order the response lists them."""


class InferenceService:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def resolve(self, model: str, version: str | None) -> Variant:
        return self.registry.resolve(model, version)

    async def infer(self, variant: Variant, request: DecodedRequest) -> InferenceResult:
        manifest = variant.manifest
        check_request(manifest, request)
        runtime = variant.runtime
        if variant.state is not VariantState.READY or runtime is None:
            detail = variant.reason or "it is still loading"
            raise Unavailable(f"model '{manifest.name}' variant '{variant.name}' is not ready: {detail}")
        wanted = request.outputs
        names = [spec.name for spec in manifest.outputs] if wanted is None else [o.name for o in wanted]
        inputs = {tensor.name: tensor.array for tensor in request.inputs}
        try:
            produced = await anyio.to_thread.run_sync(runtime.infer, inputs, names)
        except Exception as exc:  # any failure inside a model is the model's, not the client's
            log.exception("model '%s' variant '%s' failed", manifest.name, variant.name)
            raise ModelFailed(f"model '{manifest.name}' variant '{variant.name}' failed: {exc}") from exc
        if wanted is None:
            outputs = [(name, produced[name], wants_binary(request, None)) for name in names]
        else:
            outputs = [(o.name, produced[o.name], wants_binary(request, o)) for o in wanted]
        return InferenceResult(variant, outputs)
