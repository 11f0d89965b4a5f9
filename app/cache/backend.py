"""What a cache backend does. Backends may raise anything: :class:`app.cache.cache.ResultCache` turns every
failure into a miss, so a sick backend never fails a request."""

from typing import Protocol


class CacheBackend(Protocol):
    name: str
    """The ``backend`` label in metrics: ``memory`` or ``redis``."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def usage(self) -> tuple[int, int] | None:
        """Bytes and entries held, where the backend knows them (in-process); None otherwise."""
        ...

    async def close(self) -> None: ...
