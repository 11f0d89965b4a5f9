"""Liveness, readiness and server metadata."""

from fastapi import APIRouter, Response

from app import __version__
from app.api.deps import ContextDep
from app.errors import Unavailable
from app.model_views import EXTENSIONS
from app.protocol.schemas import ServerMetadata

router = APIRouter(tags=["health"])


@router.get("/v2/health/live", summary="Liveness: the process answers")
async def live() -> Response:
    return Response(status_code=200)


@router.get("/v2/health/ready", summary="Readiness: every required model is loaded")
async def ready(context: ContextDep) -> Response:
    reasons = context.service.not_ready_reasons()
    if reasons:
        raise Unavailable("not ready: " + "; ".join(reasons))
    return Response(status_code=200)


@router.get("/v2", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="servometer", version=__version__, extensions=EXTENSIONS)
