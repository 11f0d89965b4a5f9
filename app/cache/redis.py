"""Redis backend (redis-py asyncio, one connection pool): shared by every replica that points at it.

Lookups made in the same event-loop turn travel as one ``MGET`` and writes as one pipeline: under
concurrency that is one round trip and one command's overhead for many requests instead of one each. Every
round trip is capped by ``timeout_s``: a stalled Redis costs a request at most that, then a miss.
"""

import asyncio
from typing import Any

from redis.asyncio import Redis


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, prefix: str, timeout_s: float, max_connections: int) -> None:
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=max_connections,
            health_check_interval=0,
        )
        self._gets: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._sets: list[tuple[str, bytes, int, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> bytes | None:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        if not self._gets:
            asyncio.get_running_loop().call_soon(self._spawn, self._flush_gets)
        self._gets.append((self.prefix + key, future))
        return await future

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._sets:
            asyncio.get_running_loop().call_soon(self._spawn, self._flush_sets)
        self._sets.append((self.prefix + key, value, max(1, int(ttl_s * 1000)), future))
        await future

    def _spawn(self, flush: Any) -> None:
        task = asyncio.get_running_loop().create_task(flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_gets(self) -> None:
        batch, self._gets = self._gets, []
        try:
            values = await asyncio.wait_for(self._client.mget([key for key, _ in batch]), self.timeout_s)
        except asyncio.CancelledError:
            _fail([future for _, future in batch], ConnectionError("the Redis backend is closing"))
            raise
        except Exception as exc:  # every waiting lookup gets the failure (a miss upstream)
            _fail([future for _, future in batch], exc)
            return
        for (_, future), value in zip(batch, values, strict=True):
            if future.done():
                continue
            if value is None or isinstance(value, bytes):
                future.set_result(value)
            else:  # a client set to decode replies would hand back str
                future.set_exception(TypeError(f"Redis returned {type(value).__name__}, expected bytes"))

    async def _flush_sets(self) -> None:
        batch, self._sets = self._sets, []
        try:
            pipeline = self._client.pipeline(transaction=False)
            for key, value, ttl_ms, _ in batch:
                pipeline.set(key, value, px=ttl_ms)
            await asyncio.wait_for(pipeline.execute(), self.timeout_s)
        except asyncio.CancelledError:
            _fail([future for *_, future in batch], ConnectionError("the Redis backend is closing"))
            raise
        except Exception as exc:
            _fail([future for *_, future in batch], exc)
            return
        for *_, future in batch:
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()


def _fail(futures: list[Any], error: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
