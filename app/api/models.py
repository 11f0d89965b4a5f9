"""Model metadata, readiness and configuration (Triton's ``model_configuration`` extension)."""

from typing import Any

from fastapi import APIRouter, Response

from app.api.deps import ContextDep
from app.errors import Unavailable
from app.protocol.datatypes import triton_type
from app.protocol.schemas import ModelMetadata, TensorMetadata
from app.repository.registry import Variant, VariantState
from app.runtimes.base import BACKENDS, PLATFORMS
from app.schema.tensors import TensorSpec

router = APIRouter(tags=["models"])
# NOTE: the stats routes come first: "/v2/models/stats" would otherwise match "/v2/models/{model}".


@router.get("/v2/models/stats", summary="Statistics of every variant (Triton's statistics extension)")
@router.get("/v2/models/{model}/stats", summary="Statistics of every variant of a model")
@router.get("/v2/models/{model}/versions/{version}/stats", summary="Statistics of one variant")
async def model_stats(context: ContextDep, model: str | None = None, version: str | None = None) -> dict[str, Any]:
    if model is None:
        variants = list(context.registry.variants())
    elif version is None:
        variants = list(context.registry.get(model).variants.values())
    else:
        variants = [context.registry.resolve(model, version)]
    return {
        "model_stats": [
            context.metrics.for_variant(v.model_name, v.name).stats.to_triton(v.model_name, str(v.version))
            for v in variants
        ]
    }


@router.get("/v2/models/{model}", response_model=ModelMetadata, summary="Model metadata (default variant)")
@router.get("/v2/models/{model}/versions/{version}", response_model=ModelMetadata, summary="Metadata of one variant")
async def model_metadata(context: ContextDep, model: str, version: str | None = None) -> ModelMetadata:
    entry = context.registry.get(model)
    variant = entry.resolve(version)
    versions = [str(variant.version)] if version else [str(v.version) for v in entry.variants.values()]
    return ModelMetadata(
        name=variant.model_name,
        versions=versions,
        platform=PLATFORMS[variant.spec.runtime],
        inputs=[_tensor(spec) for spec in variant.manifest.inputs],
        outputs=[_tensor(spec) for spec in variant.manifest.outputs],
    )


@router.get("/v2/models/{model}/ready", summary="200 when the default variant serves")
@router.get("/v2/models/{model}/versions/{version}/ready", summary="200 when the variant serves")
async def model_ready(context: ContextDep, model: str, version: str | None = None) -> Response:
    variant = context.registry.resolve(model, version)
    if variant.state is not VariantState.READY:
        raise Unavailable(f"model '{model}' variant '{variant.name}' is not ready: {variant.not_ready_reason}")
    return Response(status_code=200)


@router.get("/v2/models/{model}/config", summary="Model configuration in Triton's JSON form")
@router.get("/v2/models/{model}/versions/{version}/config", summary="Configuration of one variant")
async def model_config(context: ContextDep, model: str, version: str | None = None) -> dict[str, Any]:
    return triton_config(context.registry.resolve(model, version), cache_on=context.service.cache is not None)


def _tensor(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(name=spec.name, datatype=spec.datatype, shape=spec.shape)


def triton_config(variant: Variant, cache_on: bool) -> dict[str, Any]:
    """The subset of Triton's ModelConfig that perf_analyzer and tritonclient read.

    Triton's ``dims`` leave out the batch dimension when ``max_batch_size`` > 0.
    """
    manifest = variant.manifest
    batching = manifest.batching
    max_batch = batching.max_batch_size if batching.max_batch_size > 1 else 0

    def tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "data_type": triton_type(s.datatype), "dims": s.shape[1:] if max_batch else s.shape}
            for s in specs
        ]

    config: dict[str, Any] = {
        "name": manifest.name,
        "platform": PLATFORMS[variant.spec.runtime],
        "backend": BACKENDS[variant.spec.runtime],
        "version_policy": {"specific": {"versions": [variant.version]}},
        "max_batch_size": max_batch,
        "input": tensors(manifest.inputs),
        "output": tensors(manifest.outputs),
        "response_cache": {"enable": cache_on and manifest.cache.enabled},
        "parameters": {
            "variant": {"string_value": variant.name},
            "precision": {"string_value": variant.spec.precision},
        },
    }
    if max_batch:
        config["dynamic_batching"] = {
            "preferred_batch_size": batching.preferred_batch_sizes,
            "max_queue_delay_microseconds": int(batching.max_queue_delay_ms * 1000),
        }
    return config
