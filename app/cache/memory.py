"""In-process LRU bounded in bytes: the default backend, so the gateway needs no other service."""

import sys
import time
from collections import OrderedDict

ENTRY_OVERHEAD = 150
"""Bytes an entry costs besides its key and value objects: the (expiry, value) tuple, the expiry float and the
ordered dict's slot and link (measured with tracemalloc, CPython 3.11)."""


def entry_cost(key: str, value: bytes) -> int:
    """What keeping ``value`` under ``key`` costs in memory: the budget counts this, not the value's length (a
    130-byte answer costs ~450 bytes kept)."""
    return sys.getsizeof(key) + sys.getsizeof(value) + ENTRY_OVERHEAD


class MemoryBackend:
    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        """key -> (expires at, value)."""
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
        cost = entry_cost(key, value)
        if cost > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._remove(key)
        while self._entries and self.stored_bytes + cost > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = (self._now() + ttl_s, value)
        self.stored_bytes += cost

    def _remove(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.stored_bytes -= entry_cost(key, value)

    def usage(self) -> tuple[int, int]:
        return self.stored_bytes, len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.stored_bytes = 0
