"""Past capacity: the excess is refused at once with 503 and Retry-After, and the requests that were accepted
finish within what the bounded queue allows, never behind an unbounded backlog."""

import asyncio
import time

import yaml

from tests.api.conftest import async_app
from tests.deploy.stack import slow_request, write_slow_model

QUEUE = 8
LENGTH = 1000  # a few milliseconds per call


async def test_overload_is_refused_fast_and_accepted_requests_keep_bounded_latency(tmp_path):
    folder = tmp_path / "models" / "slow"
    write_slow_model(folder, latency_objective_s=1.0)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["batching"] = {"max_batch_size": 0, "max_queue_size": QUEUE}
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    async with async_app(tmp_path / "models", onnx_intra_op_threads=1) as (_, client):
        body = slow_request(LENGTH)
        started = time.monotonic()
        one = await client.post("/v2/models/slow/infer", json=body)
        call_s = time.monotonic() - started
        assert one.status_code == 200

        async def timed() -> tuple[int, float, str | None]:
            begin = time.monotonic()
            response = await client.post("/v2/models/slow/infer", json=body)
            return response.status_code, time.monotonic() - begin, response.headers.get("retry-after")

        results = await asyncio.gather(*(timed() for _ in range(200)))
    accepted = [seconds for status, seconds, _ in results if status == 200]
    refused = [(seconds, retry) for status, seconds, retry in results if status == 503]
    assert len(accepted) + len(refused) == 200
    assert refused, "200 requests at once must overflow a queue of 8"
    assert all(retry == "1" for _, retry in refused)
    # Accepted work is at most the queue plus the call in progress; allow generous slack for a shared machine.
    bound = (QUEUE + 2) * call_s * 5 + 1.0
    assert max(accepted) < bound, (max(accepted), bound)
    assert max(seconds for seconds, _ in refused) < 2.0  # refused at admission, not after waiting
