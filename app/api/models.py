"""Model metadata, readiness and configuration (Triton's ``model_configuration`` extension)."""

from typing import Any

from fastapi import APIRouter, Response

from app import model_views
from app.api.deps import ContextDep
from app.protocol.schemas import ModelMetadata

router = APIRouter(tags=["models"])
# NOTE: the stats routes come first: "/v2/models/stats" would otherwise match "/v2/models/{model}".


@router.get("/v2/models/stats", summary="Statistics of every variant (Triton's statistics extension)")
@router.get("/v2/models/{model}/stats", summary="Statistics of every variant of a model")
@router.get("/v2/models/{model}/versions/{version}/stats", summary="Statistics of one variant")
async def model_stats(context: ContextDep, model: str | None = None, version: str | None = None) -> dict[str, Any]:
    return model_views.model_stats(context.registry, context.metrics, model, version)


@router.get("/v2/models/{model}", response_model=ModelMetadata, summary="Model metadata (default variant)")
@router.get("/v2/models/{model}/versions/{version}", response_model=ModelMetadata, summary="Metadata of one variant")
async def model_metadata(context: ContextDep, model: str, version: str | None = None) -> ModelMetadata:
    return model_views.model_metadata(context.registry, model, version)


@router.get("/v2/models/{model}/ready", summary="200 when the default variant serves")
@router.get("/v2/models/{model}/versions/{version}/ready", summary="200 when the variant serves")
async def model_ready(context: ContextDep, model: str, version: str | None = None) -> Response:
    model_views.check_ready(context.registry, model, version)
    return Response(status_code=200)


@router.get("/v2/models/{model}/config", summary="Model configuration in Triton's JSON form")
@router.get("/v2/models/{model}/versions/{version}/config", summary="Configuration of one variant")
async def model_config(context: ContextDep, model: str, version: str | None = None) -> dict[str, Any]:
    variant = context.registry.resolve(model, version)
    return model_views.triton_config(variant, cache_on=context.service.cache is not None)
