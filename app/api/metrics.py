"""``GET /metrics`` in the Prometheus text format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ContextDep

router = APIRouter(tags=["telemetry"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.render(), media_type=CONTENT_TYPE_LATEST)
