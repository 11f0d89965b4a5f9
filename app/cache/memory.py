"""In-process LRU bounded in bytes: the default backend, so the gateway needs no other service."""

import time
from collections import OrderedDict


class MemoryBackend:
    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.stored_bytes = 0
        self._now = time.monotonic

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires_at, value = found
        if expires_at <= self._now():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._remove(key)
        while self._entries and self.stored_bytes + len(value) > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = (self._now() + ttl_s, value)
        self.stored_bytes += len(value)

    def _remove(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.stored_bytes -= len(value)

    def usage(self) -> tuple[int, int]:
        return self.stored_bytes, len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.stored_bytes = 0
