"""The live page in a real browser (Debian's chromium driven by Playwright): a gateway with traffic of every kind
(successes, a cache hit, a 400, overload 503s), the page opened, its charts drawn, its figures equal to /metrics,
nothing failing to load, no console error, and a screenshot in the test's output."""

import concurrent.futures
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.stack import slow_request, write_slow_model
from tests.helpers import copy_model, digits_images, running_server, server_process, v2_json

SLOW_QUEUE = 2
SLOW_LENGTH = 900  # tens of milliseconds a call: a burst of 24 overflows a queue of 2


def chromium() -> str:
    """Debian's chromium (``make test`` installs it): Playwright drives it, no browser is downloaded."""
    path = shutil.which("chromium")
    assert path, "the browser tests need Debian's chromium on PATH (make system-deps installs it)"
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium())
        yield launched
        launched.close()


def scrape(address: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://{address}/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def send_traffic(address: str) -> None:
    images = digits_images(6)
    with httpx.Client(base_url=f"http://{address}") as client:
        for index in range(6):
            assert client.post("/v2/models/digits/infer", json=v2_json({"image": images[index : index + 1]})).is_success
        assert client.post("/v2/models/digits/infer", json=v2_json({"image": images[:1]})).headers[
            "servometer-cache"
        ] == "hit"  # fmt: skip
        bad = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [1.0]}]}
        assert client.post("/v2/models/digits/infer", json=bad).status_code == 400

    def slow(_: int) -> int:
        return httpx.post(
            f"http://{address}/v2/models/slow/infer", json=slow_request(SLOW_LENGTH), timeout=60
        ).status_code

    for _ in range(20):  # a burst past the queue is refused; the machine's speed decides how many
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            statuses = list(pool.map(slow, range(24)))
        if 503 in statuses:
            return
    raise AssertionError("no burst of 24 overflowed a queue of 2")


def wait_for_sampled(page: Page, scraped: dict[Any, float]) -> None:
    """The page polls every second: wait until its digits/fp32 totals show what /metrics showed after the traffic."""
    expected = str(
        round(value(scraped, "servometer_requests_total", model="digits", variant="fp32", outcome="success"))
    )
    page.wait_for_function(
        "expected => document.querySelector('[data-total=\"requests.success\"]')?.textContent === expected",
        arg=expected,
        timeout=30_000,
    )


def shown_totals(page: Page) -> dict[str, tuple[float, str]]:
    cells = page.locator("[data-total]")
    return {
        cells.nth(i).get_attribute("data-total") or "": (
            float(cells.nth(i).get_attribute("data-value") or "nan"),
            cells.nth(i).inner_text(),
        )
        for i in range(cells.count())
    }


def test_the_live_page_shows_the_traffic_as_metrics_counts_it(browser, tmp_path):
    models = tmp_path / "models"
    copy_model("digits", models)
    write_slow_model(models / "slow", latency_objective_s=0.001)
    manifest = yaml.safe_load((models / "slow" / "model.yaml").read_text())
    manifest["batching"] = {"max_batch_size": 0, "max_queue_size": SLOW_QUEUE}
    (models / "slow" / "model.yaml").write_text(yaml.safe_dump(manifest))
    broken = models / "broken"  # a variant whose file is missing: the page says why it does not serve
    broken.mkdir()
    manifest["name"] = "broken"
    manifest["variants"][0]["file"] = "missing.onnx"
    (broken / "model.yaml").write_text(yaml.safe_dump(manifest))
    with running_server(models, env={"SERVOMETER_ONNX_INTRA_OP_THREADS": "1"}, log=tmp_path / "server.log") as address:
        send_traffic(address)
        scraped = scrape(address)  # a scrape flushes every pending observation: what the page must come to show
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning") else None)  # fmt: skip
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.on("response", lambda response: problems.append(f"{response.status}: {response.url}")
                if response.status >= 400 else None)  # fmt: skip
        page.goto(f"http://{address}/")

        # Every chart draws (uPlot's draw hook marks its container); digits/fp32 first: the first model's default.
        page.wait_for_selector("#detail-title:has-text('digits / fp32')")
        page.wait_for_function(
            "() => { const charts = [...document.querySelectorAll('[data-chart]')];"
            " return charts.length >= 10 && charts.every(chart => Number(chart.dataset.drawn) > 0); }",
            timeout=30_000,
        )
        wait_for_sampled(page, scraped)
        totals = shown_totals(page)
        for outcome in ("success", "client_error", "rejected", "server_error"):
            expected = value(scraped, "servometer_requests_total", model="digits", variant="fp32", outcome=outcome)
            assert totals[f"requests.{outcome}"] == (expected, str(round(expected))), outcome
        hits = value(scraped, "servometer_cache_lookups_total", model="digits", backend="memory", result="hit")
        assert hits >= 1
        assert totals["cache.hit"] == (hits, str(round(hits)))
        inferences = value(scraped, "servometer_inferences_total", model="digits", variant="fp32")
        assert totals["inferences"] == (inferences, str(round(inferences)))
        assert page.locator("#variants tbody tr[data-model='digits'][data-variant='int8'] td").nth(2).inner_text() == (
            "READY"
        )
        unavailable = page.locator("#variants tbody tr[data-model='broken'] td").nth(2).inner_text()
        assert unavailable.startswith("UNAVAILABLE: ")
        assert "missing.onnx" in unavailable

        # The overloaded model: its refusals are shown as /metrics counts them, and its latency objective breached.
        page.locator("#variants tbody tr[data-model='slow']").click()
        page.wait_for_selector("#detail-title:has-text('slow / fp32')")
        rejected = value(scraped, "servometer_requests_total", model="slow", variant="fp32", outcome="rejected")
        assert rejected >= 1
        page.wait_for_function(
            "expected => document.querySelector('[data-total=\"requests.rejected\"]')?.textContent === expected",
            arg=str(round(rejected)),
            timeout=30_000,
        )
        latency = page.locator("#checks tbody tr[data-alert='ServometerLatencyAboveObjective'] td").nth(4)
        assert latency.inner_text().startswith("breached")
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-chart]')].every(chart => Number(chart.dataset.drawn) > 0)"
        )
        screenshot = tmp_path / "live-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
        assert "Worker pid" in page.locator("#worker").inner_text()
        page.close()
    assert problems == []


def test_the_page_asks_for_a_key_and_keeps_it_out_of_urls_and_storage(browser, demo_models, tmp_path):
    key = "live-page-key-" + "x" * 20
    env = {"SERVOMETER_API_KEYS": f'["{key}"]'}
    with running_server(demo_models, env=env, log=tmp_path / "server.log") as address:
        page = browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"http://{address}/")
        page.wait_for_selector("#key-form:not([hidden])")
        page.fill("#key", key)
        page.click("#key-form button")
        page.wait_for_selector("#content:not([hidden])")
        page.wait_for_selector("#variants tbody tr[data-model='digits']")
        assert all(key not in url for url in requested)
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
        assert key not in stored
        assert page.input_value("#key") == ""
        page.close()


def test_with_two_workers_the_page_says_it_shows_the_worker_that_answered(browser, demo_models, tmp_path):
    with server_process(demo_models, "--workers", "2", log=tmp_path / "server.log") as (server, address):
        overview = httpx.get(f"http://{address}/ui/api/overview").json()
        assert overview["worker"]["workers"] == 2
        page = browser.new_page()
        page.goto(f"http://{address}/")
        page.wait_for_selector("#worker:has-text('one of 2')")
        shown = int(re.search(r"pid (\d+)", page.locator("#worker").inner_text())[1])  # type: ignore[index]
        parent = Path(f"/proc/{shown}/stat").read_text().rsplit(")", 1)[1].split()[1]
        assert int(parent) == server.pid, "the page names a worker of this server"
        page.close()
