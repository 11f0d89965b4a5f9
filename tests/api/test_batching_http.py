"""Queue-full, timeout and disconnect seen from HTTP, with the digits model held busy by a gate."""

import asyncio
import threading
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from app.context import AppContext
from tests.api.conftest import async_app
from tests.helpers import digits_images

JSON = {"content-type": "application/json"}


def _body(samples: int = 1, **parameters: object) -> bytes:
    images = digits_images(samples)
    document: dict = {
        "inputs": [
            {"name": "image", "datatype": "FP32", "shape": list(images.shape), "data": images.reshape(-1).tolist()}
        ]
    }
    if parameters:
        document["parameters"] = parameters
    return orjson.dumps(document)


def _gate(app, monkeypatch) -> tuple[threading.Event, list[int]]:
    """Hold every model call of digits/fp32 until the gate opens; record batch sizes."""
    context: AppContext = app.state.context
    runtime = context.registry.resolve("digits", "fp32").runtime
    assert runtime is not None
    original = runtime.infer
    gate = threading.Event()
    sizes: list[int] = []

    def held(inputs, outputs):
        sizes.append(len(inputs["image"]))
        gate.wait(30)
        return original(inputs, outputs)

    monkeypatch.setattr(runtime, "infer", held)
    return gate, sizes


async def _until(condition, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _depth(app) -> int:
    value = app.state.context.metrics.sample_value("servometer_queue_depth", {"model": "digits", "variant": "fp32"})
    return int(value or 0)


async def test_a_full_queue_answers_503_with_retry_after_and_the_queued_requests_still_complete(
    tmp_path, demo_models, monkeypatch
):
    from tests.helpers import copy_model

    folder = copy_model("digits", tmp_path)
    manifest = (folder / "model.yaml").read_text().replace("max_queue_size: 2048", "max_queue_size: 3")
    (folder / "model.yaml").write_text(manifest)
    async with async_app(tmp_path, cache_backend="off") as (app, client):
        gate, sizes = _gate(app, monkeypatch)
        running = asyncio.create_task(client.post("/v2/models/digits/infer", content=_body(64), headers=JSON))
        await _until(lambda: sizes == [64])
        queued = [
            asyncio.create_task(client.post("/v2/models/digits/infer", content=_body(), headers=JSON)) for _ in range(3)
        ]
        await _until(lambda: _depth(app) == 3)
        capacity = app.state.context.metrics.sample_value(
            "servometer_queue_capacity", {"model": "digits", "variant": "fp32"}
        )
        assert capacity == 3  # depth over capacity is what the queue-saturation alert reads
        rejected = await client.post("/v2/models/digits/infer", content=_body(), headers=JSON)
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "1"
        assert "is full (3 requests)" in rejected.json()["error"]
        gate.set()
        responses = await asyncio.gather(running, *queued)
        assert [r.status_code for r in responses] == [200] * 4
        assert sizes == [64, 3]


async def test_a_request_that_times_out_in_the_queue_answers_504(demo_models, monkeypatch):
    async with async_app(demo_models, cache_backend="off") as (app, client):
        gate, sizes = _gate(app, monkeypatch)
        running = asyncio.create_task(client.post("/v2/models/digits/infer", content=_body(64), headers=JSON))
        await _until(lambda: sizes == [64])
        late = await client.post("/v2/models/digits/infer", content=_body(timeout=30_000), headers=JSON)
        assert late.status_code == 504
        assert "waited 30 ms in the queue of model 'digits' variant 'fp32'" in late.json()["error"]
        gate.set()
        assert (await running).status_code == 200
        assert sizes == [64]
        samples = app.state.context.metrics.sample_value
        labels = {"model": "digits", "variant": "fp32"}
        # The client chose the timeout: counted as its own, apart from the server's timeouts that page
        assert samples("servometer_requests_total", {**labels, "outcome": "client_timeout"}) == 1
        assert samples("servometer_requests_total", {**labels, "outcome": "timeout"}) == 0


@pytest.mark.parametrize(("priority", "status"), [(5, 400), ("x", 400)])
async def test_bad_scheduling_parameters_are_400(demo_models, priority, status):
    async with async_app(demo_models) as (_, client):
        response = await client.post("/v2/models/digits/infer", content=_body(priority=priority), headers=JSON)
        assert response.status_code == status
        assert "'priority' must be an integer from 0 to 1" in response.json()["error"]


async def test_a_client_that_disconnects_while_queued_is_dropped_before_compute(demo_models, monkeypatch):
    async with async_app(demo_models, cache_backend="off") as (app, client):
        gate, sizes = _gate(app, monkeypatch)
        running = asyncio.create_task(client.post("/v2/models/digits/infer", content=_body(64), headers=JSON))
        await _until(lambda: sizes == [64])
        hang_up = asyncio.Event()
        sent: list[MutableMapping[str, Any]] = []
        body = _body(2)
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive() -> dict:
            message = next(messages, None)
            if message is not None:
                return message
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": "/v2/models/digits/infer",
            "raw_path": b"/v2/models/digits/infer",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "scheme": "http",
            "root_path": "",
        }
        call = asyncio.create_task(app(scope, receive, send))
        await _until(lambda: _depth(app) == 1)
        hang_up.set()
        await call
        await _until(lambda: _depth(app) == 0)
        gate.set()
        assert (await running).status_code == 200
        await asyncio.sleep(0.05)
        assert sizes == [64]
        dropped = app.state.context.metrics.sample_value(
            "servometer_queue_dropped_requests_total", {"model": "digits", "variant": "fp32", "reason": "disconnected"}
        )
        assert dropped == 1
