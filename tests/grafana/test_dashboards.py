"""The provisioned Grafana dashboards: valid, consistently wired to the provisioned datasource, and every panel's
PromQL returns data from a real Prometheus that scraped a real Servometer under traffic.

No Grafana server runs here; what Grafana would send Prometheus is each target's expression with the template
variables filled in, and that is what is run.
"""

import json
import math
import time
from contextlib import AbstractContextManager
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from tests.deploy.stack import query, slow_request
from tests.helpers import ROOT, client_loop

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# What Grafana would substitute: one model and variant with traffic, and a rate window of several scrapes.
VARIABLES = {"$__rate_interval": "30s", "$model": "digits", "$variant": "fp32"}


def _load(path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _targets() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression with variables filled) for every target of every panel."""
    found = []
    for path in DASHBOARDS:
        dashboard = _load(path)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                found.append((dashboard["uid"], panel["title"], expr))
    return found


def _datasource_uid() -> str:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioned["datasources"]
    uid: str = datasource["uid"]
    return uid


def test_the_dashboards_are_provisioned_with_unique_uids_and_name_the_provisioned_datasource():
    assert [path.name for path in DASHBOARDS] == ["servometer-model.json", "servometer-overview.json"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "servometer.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    uid = _datasource_uid()
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)
    for path in DASHBOARDS:
        dashboard = _load(path)
        panel_ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(set(panel_ids)) == len(panel_ids), path.name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == uid for target in panel["targets"]), panel["title"]
            assert "${DS_" not in json.dumps(panel), "exported-dashboard placeholders break file provisioning"
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] == uid


def test_the_overview_shows_what_the_issue_lists_and_the_model_view_is_templated_by_model_and_variant():
    overview, model = (_load(GRAFANA / "dashboards" / f"servometer-{name}.json") for name in ("overview", "model"))
    titles = {panel["title"] for panel in overview["panels"]}
    assert {
        "Requests/s", "Error ratio", "Latency p50 / p95 / p99", "Samples/s", "Cache hit ratio", "GPU utilization",
        "GPU memory used", "Cost per 1,000 inferences", "Objective status",
    } <= titles  # fmt: skip
    assert [variable["name"] for variable in model["templating"]["list"]] == ["model", "variant"]
    assert {
        "Latency split (p99)", "Batch size distribution", "Queue depth", "Rejected and timed-out requests",
        "Variants side by side",
    } <= {panel["title"] for panel in model["panels"]}  # fmt: skip


def _traffic(address: str) -> AbstractContextManager[None]:
    """digits: one popular image (cache hits) and new ones (misses), each answer judged (feedback); bad input
    (client errors); the slow model."""
    rng = np.random.default_rng(0)

    def send(client: httpx.Client) -> None:
        image = rng.integers(0, 17, 64).astype(float).tolist() if rng.random() < 0.3 else [1.0] * 64
        document = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image}]}
        answer = client.post("/v2/models/digits/infer", json=document)
        if "servometer-response-id" in answer.headers:  # judge it, so live accuracy has data
            feedback = {"id": answer.headers["servometer-response-id"], "label": int(rng.integers(0, 10))}
            client.post("/v2/models/digits/feedback", json=feedback)
        client.post("/v2/models/digits/infer", json={"inputs": []})
        client.post("/v2/models/slow/infer", json=slow_request(16))
        time.sleep(0.005)

    return client_loop(address, send)


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


@pytest.mark.parametrize("dashboard", ["servometer-overview", "servometer-model"])
def test_every_panel_query_returns_data_from_prometheus_scraping_servometer(monitored, dashboard):
    targets = [(panel, expr) for uid, panel, expr in _targets() if uid == dashboard]
    missing = targets
    with _traffic(monitored.servometer):
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            time.sleep(1)
            missing = [(panel, expr) for panel, expr in missing if not _has_data(query(monitored.prometheus, expr))]
    assert not missing, "panels without data:\n" + "\n".join(f"{panel}: {expr}" for panel, expr in missing)


def test_the_template_variables_list_the_served_models_and_their_variants(monitored):
    def values(label: str, match: str) -> list[str]:
        response = httpx.get(
            f"http://{monitored.prometheus}/api/v1/label/{label}/values", params={"match[]": match}, timeout=10
        )
        result: list[str] = response.json()["data"]
        return result

    deadline = time.monotonic() + 30
    while not values("model", "servometer_model_ready") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert values("model", "servometer_model_ready") == ["digits", "slow"]
    assert values("variant", 'servometer_model_ready{model="digits"}') == [
        "fp16", "fp32", "fp32-opt", "int8", "int8-dynamic", "torchscript",
    ]  # fmt: skip
