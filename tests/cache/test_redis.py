import asyncio
import time

import pytest

from app.cache.redis import RedisBackend


async def test_values_round_trip_with_the_prefix_and_a_ttl(redis_server):
    backend = RedisBackend(redis_server.url, "svm-test:", 0.5, 4)
    await backend.set("k", b"\x00value", 30)
    assert await backend.get("k") == b"\x00value"
    assert await backend.get("absent") is None
    client = redis_server.client()
    assert client.exists("svm-test:k")
    assert 25_000 < client.pttl("svm-test:k") <= 30_000
    await backend.close()


async def test_a_stalled_redis_costs_at_most_the_timeout(redis_server):
    backend = RedisBackend(redis_server.url, "svm-test:", 0.05, 4)
    await backend.set("k", b"v", 30)
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
            await backend.get("k")
        assert time.monotonic() - started < 0.5
    finally:
        redis_server.resume()
    await backend.close()
