"""The variant report over HTTP: ``GET /v2/models/{model}/variants`` (JSON) and ``.../variants/plot.png``."""

from fastapi import APIRouter, Response

from app.api.deps import ContextDep
from app.errors import Unavailable
from app.variants.plot import PlottingUnavailable, plot_png
from app.variants.report import ModelReport

router = APIRouter(tags=["variants"])


@router.get(
    "/v2/models/{model}/variants",
    response_model=ModelReport,
    summary="Every variant's quality, latency, throughput, cost, size and memory, measured (cached by file digest)",
)
async def variant_report(context: ContextDep, model: str) -> ModelReport:
    return await context.reports.get(model)


@router.get(
    "/v2/models/{model}/variants/plot.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The variant report as a plot of quality against latency",
)
async def variant_plot(context: ContextDep, model: str) -> Response:
    report = await context.reports.get(model)
    try:
        return Response(plot_png(report), media_type="image/png")
    except PlottingUnavailable as exc:
        raise Unavailable(str(exc)) from None
