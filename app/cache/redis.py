"""Redis backend (redis-py asyncio, one connection pool): shared by every replica that points at it.

Every call is capped by ``timeout_s``: a stalled Redis costs a request at most that, then a miss.
"""

import asyncio

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

    async def get(self, key: str) -> bytes | None:
        value = await asyncio.wait_for(self._client.get(self.prefix + key), self.timeout_s)
        if value is None or isinstance(value, bytes):
            return value
        raise TypeError(f"Redis returned {type(value).__name__}, expected bytes")  # a client set to decode replies

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await asyncio.wait_for(self._client.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000))), self.timeout_s)

    def usage(self) -> None:
        return None  # Redis keeps its own figures (INFO memory); other replicas share them

    async def close(self) -> None:
        await self._client.aclose()
