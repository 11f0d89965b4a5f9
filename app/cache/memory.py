"""In-process LRU bounded in bytes: the default backend, so the gateway needs no other service.

Entries are the answers themselves (read-only copies of the output arrays), not encoded bytes: within one
process there is nothing to encode, check or decode, which was most of a cache miss's cost.
"""

import sys
import time
from collections import OrderedDict

import numpy as np

Outputs = dict[str, np.ndarray]

ENTRY_OVERHEAD = 150
"""Bytes an entry costs besides its key, its dict and its arrays: the (expiry, outputs) tuple, the expiry float
and the ordered dict's slot and link (measured with tracemalloc, CPython 3.11)."""


def entry_cost(key: str, outputs: Outputs) -> int:
    """What keeping ``outputs`` under ``key`` costs in memory: the budget counts this, not the data's length (a
    digits answer of 100 bytes of data costs ~900 bytes kept)."""
    arrays = sum(sys.getsizeof(array) for array in outputs.values())
    # A BYTES output's array holds references: its strings are kept besides it.
    arrays += sum(sys.getsizeof(item) for array in outputs.values() if array.dtype.kind == "O" for item in array.flat)
    return sys.getsizeof(key) + sys.getsizeof(outputs) + arrays + ENTRY_OVERHEAD


def frozen_copy(outputs: Outputs) -> Outputs:
    """Arrays of their own (a request's outputs are views of its whole batch's) that nobody can change."""
    copies = {}
    for name, array in outputs.items():
        copy = np.array(array)
        copy.flags.writeable = False
        copies[name] = copy
    return copies


class MemoryBackend:
    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, Outputs]] = OrderedDict()
        """key -> (expires at, outputs)."""
        self.stored_bytes = 0
        self._now = time.monotonic

    def get(self, key: str) -> Outputs | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires_at, outputs = found
        if expires_at <= self._now():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return outputs

    def set(self, key: str, outputs: Outputs, ttl_s: float) -> None:
        """Keep ``outputs`` (arrays the caller no longer changes; see :func:`frozen_copy`) for ``ttl_s``."""
        cost = entry_cost(key, outputs)
        if cost > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._remove(key)
        while self._entries and self.stored_bytes + cost > self.max_bytes:
            self._remove(next(iter(self._entries)))
        self._entries[key] = (self._now() + ttl_s, outputs)
        self.stored_bytes += cost

    def _remove(self, key: str) -> None:
        _, outputs = self._entries.pop(key)
        self.stored_bytes -= entry_cost(key, outputs)

    def usage(self) -> tuple[int, int]:
        return self.stored_bytes, len(self._entries)

    def close(self) -> None:
        self._entries.clear()
        self.stored_bytes = 0
