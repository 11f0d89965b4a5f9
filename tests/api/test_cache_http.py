"""The in-memory result cache seen from HTTP."""

import asyncio
import shutil
import threading
import time

import orjson
import pytest

from app.context import AppContext
from tests.api.conftest import async_app
from tests.helpers import copy_model, digits_images

JSON = {"content-type": "application/json"}


def _json_body(**extra: object) -> bytes:
    tensor = {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": digits_images(1).reshape(-1).tolist()}
    return orjson.dumps({"inputs": [tensor], **extra})


def _binary_body() -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "parameters": {"binary_data_size": 256}}
            ]
        }
    )
    return header + digits_images(1).tobytes(), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


def _lookups(app, result: str) -> float:
    metrics = app.state.context.metrics
    return (
        metrics.sample_value(
            "servometer_cache_lookups_total", {"model": "digits", "backend": "memory", "result": result}
        )
        or 0.0
    )


async def _post(client, body: bytes, headers: dict[str, str] | None = None):
    response = await client.post("/v2/models/digits/infer", content=body, headers=headers or JSON)
    assert response.status_code == 200, response.text
    return response


async def _until_hit(client, body: bytes, headers: dict[str, str] | None = None):
    for _ in range(100):
        response = await _post(client, body, headers)
        if response.headers["servometer-cache"] == "hit":
            return response
        await asyncio.sleep(0.01)
    raise AssertionError("no cache hit")


async def test_a_repeated_request_is_a_hit_with_the_same_answer(demo_models):
    async with async_app(demo_models) as (app, client):
        first = await _post(client, _json_body())
        assert first.headers["servometer-cache"] == "miss"
        hit = await _until_hit(client, _json_body())
        assert hit.json()["outputs"] == first.json()["outputs"]
        assert _lookups(app, "hit") >= 1
        stored = app.state.context.metrics.sample_value("servometer_cache_stored_bytes", {"backend": "memory"})
        assert stored is not None
        assert stored > 0


async def test_the_same_tensor_sent_as_binary_hits_the_entry_stored_from_json(demo_models):
    async with async_app(demo_models) as (_, client):
        from_json = await _post(client, _json_body())
        await _until_hit(client, _json_body())
        body, headers = _binary_body()
        response = await _post(client, body, headers)
        assert response.headers["servometer-cache"] == "hit"
        assert response.json()["outputs"] == from_json.json()["outputs"]


@pytest.mark.parametrize(
    ("headers", "extra"), [({"cache-control": "no-cache"}, {}), ({}, {"parameters": {"cache": False}})]
)
async def test_a_request_can_bypass_the_cache(demo_models, headers, extra):
    async with async_app(demo_models) as (app, client):
        await _post(client, _json_body())
        await _until_hit(client, _json_body())
        response = await _post(client, _json_body(**extra), {**JSON, **headers})
        assert response.headers["servometer-cache"] == "bypass"
        assert _lookups(app, "bypass") == 1


async def test_a_cache_parameter_that_is_not_a_boolean_is_a_bad_request(demo_models):
    async with async_app(demo_models) as (_, client):
        response = await client.post(
            "/v2/models/digits/infer", content=_json_body(parameters={"cache": "no"}), headers=JSON
        )
        assert response.status_code == 400
        assert "'cache' must be true or false" in response.json()["error"]


async def test_caching_is_off_for_a_model_that_disables_it_and_for_a_server_that_does(tmp_path, demo_models):
    folder = copy_model("digits", tmp_path)
    manifest = (folder / "model.yaml").read_text().replace("cache:\n  enabled: true", "cache:\n  enabled: false")
    (folder / "model.yaml").write_text(manifest)
    async with async_app(tmp_path) as (_, client):
        for _ in range(2):
            assert (await _post(client, _json_body())).headers["servometer-cache"] == "off"
    async with async_app(demo_models, cache_backend="off") as (_, client):
        for _ in range(2):
            assert (await _post(client, _json_body())).headers["servometer-cache"] == "off"


async def test_identical_requests_in_flight_together_run_the_model_once(demo_models, monkeypatch):
    async with async_app(demo_models) as (app, client):
        context: AppContext = app.state.context
        runtime = context.registry.resolve("digits", "fp32").runtime
        assert runtime is not None
        original, gate, calls = runtime.infer, threading.Event(), []

        def held(inputs, outputs):
            calls.append(len(inputs["image"]))
            gate.wait(30)
            return original(inputs, outputs)

        monkeypatch.setattr(runtime, "infer", held)
        requests = [
            asyncio.create_task(client.post("/v2/models/digits/infer", content=_json_body(), headers=JSON))
            for _ in range(6)
        ]
        stats = context.metrics.for_variant("digits", "fp32").stats
        deadline = time.monotonic() + 30
        # Each request joins the flight right after its cache miss (no await between): wait for six misses.
        while stats.cache_miss.count < 6:
            assert time.monotonic() < deadline, f"only {stats.cache_miss.count} of 6 requests looked the cache up"
            await asyncio.sleep(0.01)
        gate.set()
        responses = await asyncio.gather(*requests)
        assert calls == [1]
        # The same answer for all; each carries its own response_id (digits is monitored), so compare outputs.
        assert len({orjson.dumps(r.json()["outputs"]) for r in responses}) == 1
        coalesced = context.metrics.sample_value("servometer_cache_coalesced_requests_total", {"model": "digits"})
        assert coalesced == 5


async def test_a_rebuilt_model_never_serves_the_old_files_results(tmp_path, demo_models, redis_server):
    folder = copy_model("digits", tmp_path)
    async with async_app(tmp_path, redis_url=redis_server.url) as (_, client):
        await _post(client, _json_body())
        await _until_hit(client, _json_body())
    shutil.copy(demo_models / "digits" / "model.int8.onnx", folder / "model.fp32.onnx")  # a different build
    async with async_app(tmp_path, redis_url=redis_server.url) as (_, client):
        assert (await _post(client, _json_body())).headers["servometer-cache"] == "miss"


async def test_the_cache_steps_aside_for_unique_requests_and_serves_repeats_again(demo_models):
    images = digits_images(1).reshape(-1)

    def body(n: int) -> bytes:
        data = images.copy()
        data[0] = 1000 + n  # each n its own request
        tensor = {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": data.tolist()}
        return orjson.dumps({"inputs": [tensor]})

    async with async_app(demo_models) as (app, client):
        statuses = [(await _post(client, body(n))).headers["servometer-cache"] for n in range(600)]
        assert statuses[0] == "miss"
        assert statuses[-200:].count("pass") >= 180  # one request in 16 still looked up
        assert _lookups(app, "pass") == statuses.count("pass")
        # Traffic starts repeating: the probes find the repeats and every request is looked up again.
        repeated = [(await _post(client, body(n % 4))).headers["servometer-cache"] for n in range(400)]
        assert "pass" not in repeated[-100:]
        assert repeated[-100:].count("hit") >= 95
