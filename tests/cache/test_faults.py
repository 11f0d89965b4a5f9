"""Redis faults against the real gateway app: every request is still answered correctly by the model."""

import asyncio
import threading
import time

import httpx
import orjson

from tests.api.conftest import async_app
from tests.helpers import digits_images, reference_outputs

JSON = {"content-type": "application/json"}
FAST_BREAKER = {"cache_breaker_failures": 2, "cache_breaker_reset_s": 0.2, "redis_timeout_s": 0.05}


def _expected_label(index: int) -> int:
    # Computed when first asked, not at import: on a fresh clone the demo models are built by a fixture.
    return int(reference_outputs("digits", "model.fp32.onnx", {"image": digits_images(16)})["label"][index])


def _body(index: int) -> bytes:
    image = digits_images(16)[index : index + 1]
    return orjson.dumps(
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image.reshape(-1).tolist()}
            ],
            "outputs": [{"name": "label"}],
        }
    )


async def _ask(client: httpx.AsyncClient, index: int) -> httpx.Response:
    response = await client.post("/v2/models/digits/infer", content=_body(index), headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [_expected_label(index)]
    return response


async def _until_hit(client: httpx.AsyncClient, index: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (await _ask(client, index)).headers["servometer-cache"] != "hit":
        assert time.monotonic() < deadline, "cache hits did not resume"
        await asyncio.sleep(0.05)


def _sample(app, name: str, **labels: str) -> float:
    return app.state.context.metrics.sample_value(name, labels) or 0.0


async def test_a_hit_after_a_miss_from_redis(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url) as (app, client):
        assert (await _ask(client, 0)).headers["servometer-cache"] == "miss"
        await _until_hit(client, 0)
        assert _sample(app, "servometer_cache_lookups_total", model="digits", backend="redis", result="hit") >= 1
        assert any(key.startswith(b"servometer:digits:fp32:") for key in redis_server.client().scan_iter())


async def test_redis_down_at_start_then_hits_resume_without_a_restart(demo_models, redis_server):
    redis_server.kill()
    async with async_app(demo_models, redis_url=redis_server.url, **FAST_BREAKER) as (app, client):
        for index in range(6):
            assert (await _ask(client, index)).headers["servometer-cache"] == "miss"
        assert _sample(app, "servometer_cache_errors_total", backend="redis", operation="get") >= 2
        assert _sample(app, "servometer_cache_breaker_state", backend="redis") == 2  # open: Redis not called
        assert _sample(app, "servometer_cache_lookups_total", model="digits", backend="redis", result="skipped") >= 1
        redis_server.start()
        await _until_hit(client, 3)
        assert _sample(app, "servometer_cache_breaker_state", backend="redis") == 0


async def test_redis_killed_mid_traffic_loses_no_request(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url, **FAST_BREAKER) as (_, client):
        answered = 0
        stop = time.monotonic() + 1.5

        async def traffic(offset: int) -> None:
            nonlocal answered
            index = offset
            while time.monotonic() < stop:
                await _ask(client, index % 16)
                answered += 1
                index += 3

        killer = asyncio.get_running_loop().call_later(0.5, redis_server.kill)
        await asyncio.gather(*(traffic(offset) for offset in range(4)))
        killer.cancel()
        assert answered > 20


async def test_a_stalled_redis_delays_requests_by_at_most_its_timeout_and_hits_resume(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url, **FAST_BREAKER) as (app, client):
        await _ask(client, 1)
        await _until_hit(client, 1)
        redis_server.pause()
        try:
            for index in range(5):
                started = time.monotonic()
                await _ask(client, index)
                assert time.monotonic() - started < 0.5
        finally:
            redis_server.resume()
        assert _sample(app, "servometer_cache_errors_total", backend="redis", operation="get") >= 1
        await _until_hit(client, 1)


async def test_a_slow_redis_is_bounded_by_the_timeout(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url, **FAST_BREAKER) as (_, client):
        sleeper = threading.Thread(target=redis_server.client().execute_command, args=("DEBUG", "SLEEP", "0.6"))
        sleeper.start()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await _ask(client, 2)
        assert time.monotonic() - started < 0.4
        sleeper.join()


async def test_redis_answering_errors_is_a_miss_and_recovers(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url, **FAST_BREAKER) as (app, client):
        admin = redis_server.client()
        admin.config_set("requirepass", "locked-out")  # every command from the gateway now fails with NOAUTH
        for index in range(4):
            assert (await _ask(client, index)).headers["servometer-cache"] == "miss"
        assert _sample(app, "servometer_cache_errors_total", backend="redis", operation="get") >= 1
        admin.execute_command("AUTH", "locked-out")
        admin.config_set("requirepass", "")
        await _until_hit(client, 0)


async def test_a_foreign_value_under_our_key_is_a_miss_never_an_answer(demo_models, redis_server):
    async with async_app(demo_models, redis_url=redis_server.url) as (app, client):
        await _ask(client, 4)
        await _until_hit(client, 4)
        (key,) = [k for k in redis_server.client().scan_iter() if k.startswith(b"servometer:digits:")]
        redis_server.client().set(key, b"SVMC\x05\x00\x00\x00garbage")
        assert (await _ask(client, 4)).headers["servometer-cache"] == "miss"
        assert _sample(app, "servometer_cache_errors_total", backend="redis", operation="corrupt") == 1
