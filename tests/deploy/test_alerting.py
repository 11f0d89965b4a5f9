"""Alerts end to end: a degraded model pages through real Prometheus and Alertmanager, and the page resolves when
the model recovers. Rules are the shipped ones, time-compressed (tests/deploy/stack.py)."""

import itertools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from tests.deploy.stack import slow_request
from tests.helpers import client_loop, digits_images

FAST, SLOW = 8, 2000  # input lengths: microseconds vs about 60 ms of compute, against a 20 ms p99 objective
DEADLINE_S = 90


def _slow_traffic(address: str, length: list[int]) -> AbstractContextManager[None]:
    """One client sending to the slow model back to back; ``length[0]`` can change while it runs."""

    def send(client: httpx.Client) -> None:
        response = client.post("/v2/models/slow/infer", json=slow_request(length[0]))
        assert response.status_code == 200, response.text

    return client_loop(address, send)


def _wait_for(found: Callable[[], list[dict[str, Any]]], what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} did not arrive within {DEADLINE_S} s")


def test_a_model_over_its_latency_objective_pages_and_the_page_resolves_when_it_recovers(monitored):
    webhook = monitored.webhook

    def slow_alerts(status: str) -> list[dict[str, Any]]:
        alerts = webhook.alerts("/pager", "ServometerLatencyAboveObjective", status)
        return [alert for alert in alerts if alert["labels"]["model"] == "slow"]

    length = [FAST]
    with _slow_traffic(monitored.servometer, length):
        time.sleep(3)
        assert not slow_alerts("firing"), "the model was within its objective"
        length[0] = SLOW
        started = time.monotonic()
        (firing, *_) = _wait_for(lambda: slow_alerts("firing"), "the latency page")
        fired_after = time.monotonic() - started
        length[0] = FAST
        _wait_for(lambda: slow_alerts("resolved"), "the resolution")
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["variant"] == "fp32"
    assert firing["annotations"]["runbook_url"].endswith("docs/runbooks.md#servometerlatencyaboveobjective")
    # 5 minutes of `for` compressed 30x is 10 s; scrapes, rule rounds and the 5-minute window add the rest.
    assert fired_after > 10
    # Routed by severity: a critical alert goes to the pager, not to the team's channel.
    assert not webhook.alerts("/team", "ServometerLatencyAboveObjective", "firing")


def test_the_watchdog_reaches_its_own_receiver(monitored):
    alerts = _wait_for(lambda: monitored.webhook.alerts("/watchdog", "ServometerWatchdog", "firing"), "the watchdog")
    assert alerts[0]["labels"]["severity"] == "none"
    assert not monitored.webhook.alerts("/pager", "ServometerWatchdog", "firing")


def _digits_traffic(address: str, inverted: list[bool]) -> AbstractContextManager[None]:
    """One client sending held-out digits back to back; ``inverted[0]`` flips them (16 - pixel) while it runs."""
    images = itertools.cycle(digits_images(200))

    def send(client: httpx.Client) -> None:
        image = next(images)
        data = (16 - image if inverted[0] else image).reshape(-1).tolist()
        document = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": data}]}
        response = client.post("/v2/models/digits/infer", json=document)
        assert response.status_code == 200, response.text

    return client_loop(address, send)


def test_inputs_that_drift_from_the_evaluation_data_raise_an_alert_that_resolves_when_they_return(monitored):
    webhook = monitored.webhook

    def drift_alerts(status: str) -> list[dict[str, Any]]:
        alerts = webhook.alerts("/team", "ServometerInputDrift", status)
        return [a for a in alerts if a["labels"]["model"] == "digits" and a["labels"]["feature"] == "image"]

    inverted = [True]
    with _digits_traffic(monitored.servometer, inverted):
        (firing, *_) = _wait_for(lambda: drift_alerts("firing"), "the drift alert")
        inverted[0] = False  # the window refills with data like the evaluation set's
        _wait_for(lambda: drift_alerts("resolved"), "the drift alert's resolution")
    assert firing["labels"]["severity"] == "warning"
    assert firing["annotations"]["runbook_url"].endswith("#servometerinputdrift")


def test_feedback_saying_the_model_is_wrong_pages_and_the_page_resolves_when_it_is_right_again(monitored):
    webhook = monitored.webhook
    wrong = [True]
    images = itertools.cycle(digits_images(50))

    def judge(client: httpx.Client) -> None:
        image = next(images).reshape(-1).tolist()
        document = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image}]}
        answer = client.post("/v2/models/digits/infer", json=document, headers={"cache-control": "no-cache"})
        label = next(o for o in answer.json()["outputs"] if o["name"] == "label")["data"][0]
        truth = (label + 1) % 10 if wrong[0] else label
        feedback = {"id": answer.headers["servometer-response-id"], "label": truth}
        assert client.post("/v2/models/digits/feedback", json=feedback).status_code == 200

    def pages(status: str) -> list[dict[str, Any]]:
        alerts = webhook.alerts("/pager", "ServometerLiveAccuracyBelowObjective", status)
        return [alert for alert in alerts if alert["labels"]["model"] == "digits"]

    with client_loop(monitored.servometer, judge):
        (firing, *_) = _wait_for(lambda: pages("firing"), "the live-accuracy page")
        wrong[0] = False  # right answers refill the feedback window
        _wait_for(lambda: pages("resolved"), "the live-accuracy page's resolution")
    assert firing["labels"]["severity"] == "critical"
    assert firing["annotations"]["runbook_url"].endswith("#servometerliveaccuracybelowobjective")
