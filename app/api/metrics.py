"""``GET /metrics`` in the Prometheus text format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ContextDep

router = APIRouter(tags=["telemetry"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: ContextDep) -> Response:
    body = context.metrics.render()
    if context.settings.triton_gpu_metrics:
        body += context.gpus.triton_lines()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
