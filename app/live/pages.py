"""The live page's routes, answered alike on the API's port (app/api/live_page.py) and, with ``metrics_port`` set,
on that port instead (app/api/metrics_endpoint.py). Read-only: GET only, and nothing here changes the server.

- ``/``: the page; ``/ui/static/...``: its script, style and the vendored chart library (uPlot, with its licence).
  No key is needed for these: they hold no data.
- ``/ui/api/overview``: every variant's figures, totals, checks and readiness (:class:`app.live.wire.Overview`).
- ``/ui/api/models/{model}/variants/{variant}/series?since=T``: one variant's series after ``T``.
- ``/ui/api/models/{model}/report`` (``?measure=1`` to measure one now) and ``.../report.png``: the variant report.

The page's own code is served with a Content-Security-Policy that allows only this origin's scripts and styles,
no inline script, and fetches to this origin only.
"""

import asyncio
import logging
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import parse_qs

import orjson

from app.errors import InvalidRequest, NotFound, ServingError
from app.keys import LIVE_PAGE, LIVE_PAGE_STATIC
from app.live.documents import Documents
from app.live.wire import ReportView
from app.variants.latest_reports import VariantReports
from app.variants.plot import PlottingUnavailable, plot_png

API_PREFIX = "/ui/api/"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",  # LICENSE
}
log = logging.getLogger(__name__)
_SERIES = re.compile(r"^/ui/api/models/([^/]+)/variants/([^/]+)/series$")
_REPORT = re.compile(r"^/ui/api/models/([^/]+)/report(\.png)?$")


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def is_page_path(path: str) -> bool:
    return path == LIVE_PAGE or path.startswith("/ui/")


class LivePage:
    def __init__(self, documents: Documents, reports: VariantReports) -> None:
        self.documents = documents
        self.reports = reports
        self._assets = resources.files("app.live") / "static"

    async def answer(self, path: str, query: str) -> Reply:
        """The reply to ``GET path?query``; errors as ``{"error": ...}`` with their status, as on the API."""
        try:
            return await self._answer(path, parse_qs(query))
        except ServingError as exc:
            return Reply(exc.status, "application/json", orjson.dumps({"error": exc.message}))
        except Exception:  # answered on either port alike, never a dropped connection
            log.exception("the live page's %s failed", path)
            return Reply(500, "application/json", orjson.dumps({"error": "internal server error"}))

    async def _answer(self, path: str, query: dict[str, list[str]]) -> Reply:
        if path == LIVE_PAGE:
            return self._static("index.html")
        if path.startswith(LIVE_PAGE_STATIC):
            return self._static(path.removeprefix(LIVE_PAGE_STATIC))
        # Documents are computed in a thread: tens of milliseconds of numpy over the ring, during which the event
        # loop keeps answering requests (it gets the GIL back every few milliseconds) instead of stalling.
        if path == API_PREFIX + "overview":
            overview = await asyncio.to_thread(self.documents.overview)
            return _json(overview.model_dump_json().encode())
        if (match := _SERIES.match(path)) is not None:
            since = _since(query)
            series = await asyncio.to_thread(self.documents.series, match[1], match[2], since)
            return _json(series.model_dump_json().encode())
        if (match := _REPORT.match(path)) is not None:
            return await self._report(match[1], png=bool(match[2]), measure=query.get("measure") == ["1"])
        raise NotFound(f"no live page route {path}")

    def _static(self, name: str) -> Reply:
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise NotFound(f"no static file {name}")
        asset = self._assets.joinpath(*parts)
        if not asset.is_file():
            raise NotFound(f"no static file {name}")
        suffix = "." + name.rsplit(".", 1)[1] if "." in parts[-1] else ""
        headers = {"content-security-policy": CONTENT_SECURITY_POLICY} if suffix == ".html" else {}
        return Reply(200, _TYPES.get(suffix, "application/octet-stream"), asset.read_bytes(), headers)

    async def _report(self, model: str, png: bool, measure: bool) -> Reply:
        self.documents.registry.get(model)  # an unknown model is a 404 naming it
        report = await self.reports.get(model) if measure else self.reports.latest(model)
        if not png:
            return _json(ReportView(report=report).model_dump_json().encode())
        if report is None:
            raise NotFound(f"model '{model}' has no variant report yet: measure one (it runs every variant)")
        try:
            return Reply(200, "image/png", await asyncio.to_thread(plot_png, report))
        except PlottingUnavailable as exc:
            raise ServingError(str(exc), status=503) from None


def _json(body: bytes) -> Reply:
    return Reply(200, "application/json", body)


def _since(query: dict[str, list[str]]) -> float | None:
    values = query.get("since")
    if not values:
        return None
    try:
        since = float(values[0])
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise InvalidRequest(f"query parameter 'since': expected seconds since the epoch, got {values[0]!r}")
    return since
