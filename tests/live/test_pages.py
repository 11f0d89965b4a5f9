"""The live page's routes on the app: the page and its files with a strict Content-Security-Policy, its data behind
the API keys, read-only, off with a setting, moved to ``metrics_port``, and figures that agree with /metrics."""

import asyncio
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.live.pages import CONTENT_SECURITY_POLICY
from app.telemetry.timeline import Timeline
from tests.api.conftest import async_app, context_of, started_client
from tests.helpers import digits_images, free_port, v2_json

KEY = "k" * 32


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self.scripts.append(dict(attrs))
        if tag == "style" or "style" in names or any(name.startswith("on") for name in names):
            self.inline.append(tag)

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append(data)


@pytest.fixture(scope="module")
def client(demo_models) -> Iterator[TestClient]:
    with started_client(demo_models) as client:
        yield client


async def _next_sample(timeline: Timeline) -> None:
    """Wait until the timeline has sampled once more after now (it samples every second, after a flush)."""
    taken = timeline.taken
    for _ in range(400):
        if timeline.taken > taken:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the timeline took no sample in 20 s")


def test_the_page_loads_only_its_own_scripts_and_styles_under_a_strict_policy(demo_models):
    with started_client(demo_models) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert "default-src 'none'" in CONTENT_SECURITY_POLICY
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        markup = _Markup()
        markup.feed(page.text)
        assert markup.inline == [], "inline script, style or event handler: the policy would block it"
        assert markup.scripts
        assert all(script["src"] and not script["src"].startswith("http") for script in markup.scripts)
        for asset in re.findall(r'(?:src|href)="(ui/static/[^"]+)"', page.text):
            answered = client.get("/" + asset)
            assert answered.status_code == 200, asset
            assert answered.headers["content-type"].split(";")[0] in ("text/javascript", "text/css", "image/svg+xml")
        assert client.get("/ui/static/vendor/uplot-1.6.32/LICENSE").text.startswith("The MIT License")
        for escape in ("/ui/static/../pages.py", "/ui/static/%2e%2e/pages.py", "/ui/static/vendor/../../pages.py"):
            assert client.get(escape).status_code == 404, escape


def test_the_page_is_read_only(demo_models):
    with started_client(demo_models) as client:
        for path in ("/", "/ui/api/overview", "/ui/api/models/digits/report"):
            assert client.post(path, json={}).status_code == 405, path
            assert client.delete(path).status_code == 405, path


def test_with_api_keys_the_page_loads_and_its_data_needs_a_key(demo_models):
    with started_client(demo_models, api_keys=[KEY]) as client:
        assert client.get("/").status_code == 200
        assert client.get("/ui/static/live.js").status_code == 200
        for path in ("/ui/api/overview", "/ui/api/models/digits/variants/fp32/series", "/ui/api/models/digits/report"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert "API key" in refused.json()["error"]
            assert client.get(path, headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
            assert client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200, path


def test_the_page_is_off_with_the_ui_setting(demo_models):
    with started_client(demo_models, ui=False) as client:
        for path in ("/", "/ui/api/overview", "/ui/static/live.js"):
            answered = client.get(path)
            assert answered.status_code == 404
            assert "SERVOMETER_UI" in answered.json()["error"]
        assert context_of(client).live is None


async def test_with_a_metrics_port_the_page_moves_there_with_metrics(demo_models):
    port = free_port()
    async with async_app(demo_models, metrics_port=port) as (_, client):
        moved = await client.get("/")
        assert moved.status_code == 404
        assert str(port) in moved.json()["error"]
        assert (await client.get("/ui/api/overview")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as internal:
            page = await internal.get("/")
            assert page.status_code == 200
            assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert page.headers["x-content-type-options"] == "nosniff"
            overview = await internal.get("/ui/api/overview")
            assert overview.status_code == 200
            assert {model["name"] for model in overview.json()["models"]} >= {"digits", "minilm"}
            assert (await internal.get("/ui/static/live.js")).headers["content-type"].startswith("text/javascript")
            assert (await internal.get("/ui/api/models/nope/report")).status_code == 404
            assert (await internal.get("/metrics")).status_code == 200


async def test_overview_totals_equal_what_metrics_shows(demo_models):
    async with async_app(demo_models) as (app, client):
        context = app.state.context
        images = digits_images(4)
        for index in range(4):
            answered = await client.post("/v2/models/digits/infer", json=v2_json({"image": images[index : index + 1]}))
            assert answered.status_code == 200
        assert (await client.post("/v2/models/digits/infer", json=v2_json({"image": images[:1]}))).status_code == 200
        bad = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [1.0]}]}
        assert (await client.post("/v2/models/digits/infer", json=bad)).status_code == 400
        await _next_sample(context.live.documents.timeline)
        overview = (await client.get("/ui/api/overview")).json()
        digits = next(model for model in overview["models"] if model["name"] == "digits")
        fp32 = next(variant for variant in digits["variants"] if variant["name"] == "fp32")
        metrics = context.metrics

        def scraped(name: str, **labels: str) -> float:
            return metrics.sample_value(name, {"model": "digits", **labels}) or 0.0

        for outcome, value in fp32["totals"]["requests"].items():
            assert value == scraped("servometer_requests_total", variant="fp32", outcome=outcome), outcome
        assert fp32["totals"]["requests"]["success"] == 5
        assert fp32["totals"]["requests"]["client_error"] == 1
        assert fp32["totals"]["inferences"] == scraped("servometer_inferences_total", variant="fp32")
        assert fp32["totals"]["cache_lookups"]["hit"] == scraped(
            "servometer_cache_lookups_total", backend="memory", result="hit"
        )
        assert fp32["totals"]["cache_lookups"]["hit"] >= 1
        assert fp32["state"] == "READY"
        assert fp32["default"]
        assert overview["worker"]["workers"] == 1
        assert overview["sampler"]["samples"] >= 1
        assert overview["sampler"]["cpu_seconds"] > 0
        assert {check["alert"] for check in fp32["checks"]} >= {
            "ServometerLatencyAboveObjective", "ServometerErrorRatioAboveObjective", "ServometerModelNotReady"
        }  # fmt: skip
        assert all(check["holds"] for check in fp32["checks"] if check["alert"] != "ServometerInputDrift")

        series = (await client.get("/ui/api/models/digits/variants/fp32/series")).json()
        assert len(series["t"]) >= 1
        assert all(len(values) == len(series["t"]) for values in series["series"].values())
        last = series["t"][-1]
        await _next_sample(context.live.documents.timeline)
        later = (await client.get(f"/ui/api/models/digits/variants/fp32/series?since={last}")).json()
        assert later["t"], "a sample was taken after the first answer"
        assert later["t"][0] > last, "nothing the page already has comes again"
        assert all(len(values) == len(later["t"]) for values in later["series"].values())
        assert later["pid"] == overview["worker"]["pid"]
        assert np.isclose(sum(series["batch_sizes"].values()), scraped("servometer_batch_size_count", variant="fp32"))


@pytest.mark.parametrize(
    ("path", "status", "names"),
    [
        ("/ui/api/models/digits/variants/fp32/series?since=soon", 400, "since"),
        ("/ui/api/models/digits/variants/fp32/series?since=nan", 400, "since"),
        ("/ui/api/models/nope/variants/fp32/series", 404, "nope"),
        ("/ui/api/models/digits/variants/fp99/series", 404, "fp99"),
        ("/ui/api/models/nope/report", 404, "nope"),
        ("/ui/api/nothing", 404, "/ui/api/nothing"),
    ],
)
def test_bad_page_requests_are_answered_4xx_naming_what_is_wrong(client, path, status, names):
    answered = client.get(path)
    assert answered.status_code == status
    assert names in answered.json()["error"]


async def test_the_variant_report_is_shown_once_measured(demo_models, tmp_path):
    async with async_app(demo_models, report_dir=tmp_path / "reports") as (_, client):
        assert (await client.get("/ui/api/models/digits/report")).json() == {"report": None}
        assert (await client.get("/ui/api/models/digits/report.png")).status_code == 404
        measured = await client.get("/ui/api/models/digits/report?measure=1", timeout=300)
        assert measured.status_code == 200
        report = measured.json()["report"]
        assert {variant["name"] for variant in report["variants"]} >= {"fp32", "int8"}
        assert (await client.get("/ui/api/models/digits/report")).json()["report"]["key"] == report["key"]
        plot = await client.get("/ui/api/models/digits/report.png")
        assert plot.status_code == 200
        assert plot.content.startswith(b"\x89PNG")
        assert (await client.get("/ui/api/models/minilm-ids/report")).status_code == 200
