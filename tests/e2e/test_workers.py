"""Several uvicorn workers: the counts of all of them add up in every scrape, whichever worker answers it."""

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import digits_images, running_server, v2_json


def _successes(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "servometer_requests_total" and sample.labels == {
                "model": "digits", "variant": "fp32", "outcome": "success"
            }:  # fmt: skip
                return sample.value
    return 0.0


def test_metrics_of_two_workers_add_up(demo_models, tmp_path):
    with running_server(demo_models, "--workers", "2", log=tmp_path / "server.log") as address:
        body = v2_json({"image": digits_images(1)})
        with httpx.Client(base_url=f"http://{address}") as client:
            for _ in range(40):  # each on a new connection, so both workers take some
                assert httpx.post(f"http://{address}/v2/models/digits/infer", json=body).status_code == 200
            time.sleep(1.5)  # each worker moves its pending observations into the shared files every second
            scrapes = [httpx.get(f"http://{address}/metrics").text for _ in range(6)]
            assert client.get("/v2/health/ready").status_code == 200
        assert [_successes(text) for text in scrapes] == [40.0] * 6
        workers = {
            line for line in (tmp_path / "server.log").read_text().splitlines() if "Started server process" in line
        }
        assert len(workers) == 2
        assert "servometer_queue_depth{" in scrapes[0]
