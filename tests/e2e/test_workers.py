"""Several uvicorn workers: ready only when every worker is, the counts of all of them add up in every scrape,
whichever worker answers it, and feedback is accepted by whichever worker receives it."""

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import digits_images, running_server, server_process, v2_json


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
            ids = []
            for _ in range(40):  # each on a new connection, so both workers take some
                answered = httpx.post(f"http://{address}/v2/models/digits/infer", json=body)
                assert answered.status_code == 200
                ids.append(answered.headers["servometer-response-id"])
            # Feedback reaches whichever worker: every one signs ids with the secret `serve` gave them all.
            for response_id in ids:
                judged = httpx.post(f"http://{address}/v2/models/digits/feedback", json={"id": response_id, "label": 0})
                assert judged.status_code == 200, judged.text
            # ... and once only, whichever worker the second judgement reaches.
            for response_id in ids:
                again = httpx.post(f"http://{address}/v2/models/digits/feedback", json={"id": response_id, "label": 1})
                assert again.status_code == 404, again.text
            # Each worker moves its pending observations into the shared files every second: wait until they have.
            deadline = time.monotonic() + 30
            while _successes(httpx.get(f"http://{address}/metrics").text) < 40:
                assert time.monotonic() < deadline, "the workers' counts never added up to 40"
                time.sleep(0.2)
            scrapes = [httpx.get(f"http://{address}/metrics").text for _ in range(6)]
            assert client.get("/v2/health/ready").status_code == 200
        assert [_successes(text) for text in scrapes] == [40.0] * 6
        workers = {
            line for line in (tmp_path / "server.log").read_text().splitlines() if "Started server process" in line
        }
        assert len(workers) == 2
        assert "servometer_queue_depth{" in scrapes[0]


def _workers(pid: int) -> list[int]:
    """The server's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _environment(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_ready_means_every_worker_has_said_it_is_ready(demo_models, tmp_path):
    with server_process(demo_models, "--workers", "2", log=tmp_path / "server.log") as (process, address):
        workers = _workers(process.pid)
        assert len(workers) == 2
        (board,) = {_environment(pid)["SERVOMETER_WORKER_DIR"] for pid in workers}
        # The server answered ready (server_process waited for it): both workers had published their readiness.
        assert sorted(int(mark.name) for mark in Path(board).iterdir()) == sorted(workers)
        (Path(board) / str(workers[0])).unlink()  # as that worker does when it drains or loses a required model
        answers = {httpx.get(f"http://{address}/v2/health/ready").status_code for _ in range(10)}
        assert answers == {503}, "a worker answered ready while the other was not"
