"""A stalled event loop is visible: a model call made on the loop (an ``inline_compute_below_ms`` set far too high
for what the model now computes) holds every request of the worker; the worker's log then shows the stack of
every thread, the loop's caught inside that call."""

import time

import httpx
import yaml

from tests.deploy.stack import slow_request, write_slow_model
from tests.helpers import server_process


def test_a_long_call_on_the_loop_logs_every_threads_stack_where_it_hangs(tmp_path):
    models = tmp_path / "models"
    write_slow_model(models / "slow", latency_objective_s=1.0)
    manifest = models / "slow" / "model.yaml"
    document = yaml.safe_load(manifest.read_text())
    # Every call predicted shorter than 100 s runs on the event loop: a misconfiguration made on purpose.
    document["batching"] = {"max_batch_size": 0, "inline_compute_below_ms": 100_000}
    manifest.write_text(yaml.safe_dump(document))
    env = {"SERVOMETER_LOOP_STALL_S": "0.3", "SERVOMETER_ONNX_INTRA_OP_THREADS": "1"}
    log = tmp_path / "server.log"
    with server_process(models, env=env, log=log) as (_, address), httpx.Client(timeout=120) as client:
        url = f"http://{address}/v2/models/slow/infer"
        for _ in range(2):  # measured short: from the second call on, calls run on the loop
            assert client.post(url, json=slow_request(10)).status_code == 200
        deadline = time.monotonic() + 60
        while not _dumps_inside_the_call(log.read_text()):  # each call holds the loop for about a second
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert client.post(url, json=slow_request(4000)).status_code == 200
        assert "servometer_event_loop_lag_seconds " in client.get(f"http://{address}/metrics").text


def _dumps_inside_the_call(log: str) -> bool:
    """A stall reported, the stacks caught inside the model call on the loop, and the loop running again after.
    (A stall of another cause, model loading on a busy machine say, may come first: it does not count.)"""
    for dump in log.split("the event loop has not run for")[1:]:
        stacks = dump.split("the event loop runs again after")
        if len(stacks) > 1 and "_execute_inline" in stacks[0]:
            return True
    return False
