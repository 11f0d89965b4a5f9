"""The live page on the API's port (:mod:`app.live.pages`), unless it is off or ``metrics_port`` holds it."""

from fastapi import APIRouter, Request, Response

from app.api.deps import ContextDep
from app.errors import NotFound

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/ui/{rest:path}")
async def live_page(context: ContextDep, request: Request) -> Response:
    if context.live is None:
        raise NotFound("the live page is off (SERVOMETER_UI=false)")
    if context.settings.metrics_port is not None:
        raise NotFound(f"the live page is served on port {context.settings.metrics_port}, with /metrics")
    reply = await context.live.answer(request.url.path, request.url.query)
    return Response(reply.body, reply.status, reply.headers, media_type=reply.content_type)
