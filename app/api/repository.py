"""The model management API (Triton's model repository extension): index, load, unload.

Off unless ``management_api_key`` is set, and then every call needs that key (checked in
:mod:`app.api.security` before routing). Models load only from their folder inside the configured repository, by
name: no path, no URL, nothing uploaded.
"""

from typing import Any

from fastapi import APIRouter

from app.api.deps import ContextDep
from app.describe import describe

router = APIRouter(tags=["model repository (management)"])


@router.post("/v2/repository/index", summary="Every model and variant in the repository, with its state")
async def repository_index(context: ContextDep) -> list[dict[str, Any]]:
    index: list[dict[str, Any]] = []
    for entry in context.registry.models():
        if entry.manifest is None:
            index.append({"name": entry.name, "state": "UNAVAILABLE", "reason": entry.error})
            continue
        for variant in entry.variants.values():
            index.append(
                {"name": entry.name, "version": str(variant.version), "state": variant.state.value,
                 "reason": variant.reason}
            )  # fmt: skip
    return index


@router.post("/v2/repository/models/{model}/load", summary="Load or reload a model from its repository folder")
async def load_model(context: ContextDep, model: str) -> dict[str, Any]:
    entry = await context.service.load_model(model, context.settings.drain_timeout_s)
    cache = context.service.cache
    describe([entry], context.metrics, cache.metrics if cache else None, context.settings)
    return {}


@router.post("/v2/repository/models/{model}/unload", summary="Stop serving a model")
async def unload_model(context: ContextDep, model: str) -> dict[str, Any]:
    await context.service.unload_model(model, context.settings.drain_timeout_s)
    return {}
