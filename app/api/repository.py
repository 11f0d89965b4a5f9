"""The model management API (Triton's model repository extension): index, load, unload.

Off unless ``management_api_key`` is set, and then every call needs that key (checked in
:mod:`app.api.security` before routing). Models load only from their folder inside the configured repository, by
name: no path, no URL, nothing uploaded.
"""

from typing import Any

from fastapi import APIRouter

from app import model_views
from app.api.deps import ContextDep

router = APIRouter(tags=["model repository (management)"])


@router.post("/v2/repository/index", summary="Every model and variant in the repository, with its state")
async def repository_index(context: ContextDep) -> list[dict[str, Any]]:
    return model_views.repository_index(context.registry)


@router.post("/v2/repository/models/{model}/load", summary="Load or reload a model from its repository folder")
async def load_model(context: ContextDep, model: str) -> dict[str, Any]:
    await context.load_model(model)
    return {}


@router.post("/v2/repository/models/{model}/unload", summary="Stop serving a model")
async def unload_model(context: ContextDep, model: str) -> dict[str, Any]:
    await context.unload_model(model)
    return {}
