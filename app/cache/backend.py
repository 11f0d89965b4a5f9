"""What a remote cache backend does (the in-memory one is :mod:`app.cache.memory`). Backends may raise anything:
:class:`app.cache.cache.ResultCache` turns every failure into a miss, so a sick backend never fails a request."""

from typing import Protocol


class CacheBackend(Protocol):
    name: str
    """The ``backend`` label in metrics: ``memory`` or ``redis``."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def close(self) -> None: ...
