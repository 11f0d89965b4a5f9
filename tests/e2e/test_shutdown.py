"""SIGTERM under load: readiness turns false, no new request is admitted, every admitted one is answered (200, or
503 once the drain deadline passes: never a reset or a hang), and the process exits 0."""

import concurrent.futures
import signal
import subprocess
import time

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.stack import slow_request, write_slow_model
from tests.helpers import server_process

LENGTH = 1500  # about 30 ms a call on one thread


@pytest.fixture
def repository(tmp_path):
    write_slow_model(tmp_path / "models" / "slow", latency_objective_s=1.0)
    return tmp_path / "models"


def _send(address: str) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        return client.post(f"http://{address}/v2/models/slow/infer", json=slow_request(LENGTH))


def _admitted(address: str) -> float:
    """Requests the server has received so far: those in flight and those already answered."""
    exposition = httpx.get(f"http://{address}/metrics", timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name in ("servometer_requests_in_flight", "servometer_requests_total")
        and sample.labels.get("model") == "slow"
    )


def _load(process: subprocess.Popen[bytes], address: str, requests: int, drain_s: float):
    with concurrent.futures.ThreadPoolExecutor(requests) as pool:
        futures = [pool.submit(_send, address) for _ in range(requests)]
        deadline = time.monotonic() + 60
        while _admitted(address) < requests:  # every one admitted (queued behind the one instance) before the signal
            assert time.monotonic() < deadline, f"only {_admitted(address)} of {requests} requests arrived"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Readiness is false from the signal on, and within moments no new connection is accepted at all.
        while True:
            try:
                assert httpx.get(f"http://{address}/v2/health/ready", timeout=10).status_code == 503
            except httpx.ConnectError:
                break
            assert time.monotonic() - signalled < 10  # "moments", with room for a machine whose cores are busy
            time.sleep(0.01)
        answers = [future.result(timeout=drain_s + 30) for future in futures]
    return answers, process.wait(timeout=drain_s + 30), time.monotonic() - signalled


def _server(repository, log, drain_s: float):
    env = {"SERVOMETER_DRAIN_TIMEOUT_S": str(drain_s), "SERVOMETER_ONNX_INTRA_OP_THREADS": "1"}
    return server_process(repository, env=env, log=log)


def test_sigterm_lets_every_admitted_request_finish_and_exits_zero(repository, tmp_path):
    with _server(repository, tmp_path / "server.log", drain_s=20) as (process, address):
        answers, code, took = _load(process, address, 24, 20)
    assert [answer.status_code for answer in answers] == [200] * 24
    expected = float(np.float32(0.01) ** 4 * LENGTH**3)
    assert all(answer.json()["outputs"][0]["data"][0] == pytest.approx(expected, rel=1e-3) for answer in answers)
    assert code == 0, (tmp_path / "server.log").read_text()[-2000:]
    assert took < 20


def test_work_left_at_the_drain_deadline_is_answered_503_not_dropped(repository, tmp_path):
    with _server(repository, tmp_path / "server.log", drain_s=1) as (process, address):
        answers, code, took = _load(process, address, 96, 1)  # about 2.5 s of work left for a 1 s deadline
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 503}, statuses
    refused = next(answer for answer in answers if answer.status_code == 503)
    assert "shut down before this request ran" in refused.json()["error"]
    assert code == 0
    # The drain deadline, then uvicorn's own (drain + 2 s) for the 503s to be written, with room for a busy machine.
    assert took < 1 + 3 + 10
