"""The cache as the request path sees it: never a reason for a request to fail or wait long.

In memory (the default), a lookup and a store are a dict operation each, on the request's own turn of the event
loop. With Redis, every backend failure (error, timeout, corrupt entry) is a miss plus an error count; a circuit
breaker stops calling a failing backend and probes it again with back-off; writes happen in the background, after
the response has gone.
"""

import asyncio
import logging
import time

import numpy as np

from app.cache.backend import CacheBackend
from app.cache.breaker import CircuitBreaker
from app.cache.key import CorruptEntry, decode_entry, encode_entry
from app.cache.memory import MemoryBackend, frozen_copy
from app.telemetry.views import CacheMetrics

log = logging.getLogger(__name__)

MAX_PENDING_WRITES = 256
"""Writes queued within one loop turn beyond this are skipped: a cache write is never worth unbounded memory."""


class ResultCache:
    def __init__(self, backend: CacheBackend | MemoryBackend, breaker: CircuitBreaker, metrics: CacheMetrics) -> None:
        self.local = backend if isinstance(backend, MemoryBackend) else None
        """The in-process backend, looked up with :meth:`lookup_local`; None for a remote one (:meth:`get`)."""
        self.remote = None if isinstance(backend, MemoryBackend) else backend
        self.name = backend.name
        self.breaker = breaker
        self.metrics = metrics
        self._writes: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[str, bytes, float]] = []
        if self.local is not None:
            metrics.usage = self.local.usage  # read when metrics are flushed, not on every store

    def lookup_local(self, model: str, key: str) -> dict[str, np.ndarray] | None:
        """The in-memory backend's entry (it cannot fail: no breaker, no timing)."""
        assert self.local is not None
        found = self.local.get(key)
        self.metrics.lookup(model, "miss" if found is None else "hit")
        return found

    async def get(self, model: str, key: str, digest: str) -> dict[str, np.ndarray] | None:
        """The remote backend's outputs, or None on a miss, an error, or while the breaker is open."""
        assert self.remote is not None
        if not self.breaker.allow():
            self.metrics.lookup(model, "skipped")
            return None
        started = time.perf_counter()
        try:
            raw = await self.remote.get(key)
        except Exception as exc:  # any backend failure is a miss
            self._failed("get", exc)
            self.metrics.lookup(model, "error")
            return None
        finally:
            self.metrics.operation("get", time.perf_counter() - started)
        self._succeeded()
        if raw is None:
            self.metrics.lookup(model, "miss")
            return None
        try:
            outputs = decode_entry(raw, digest)
        except CorruptEntry as exc:
            log.warning("ignoring cache entry %s: %s", key, exc)
            self.metrics.error("corrupt")
            self.metrics.lookup(model, "miss")
            return None
        self.metrics.lookup(model, "hit")
        return outputs

    def put(self, key: str, digest: str, outputs: dict[str, np.ndarray], ttl_s: float) -> None:
        """Store in the background; the response never waits for it. Writes of one loop turn share one task."""
        if self.local is not None:
            self.local.set(key, frozen_copy(outputs), ttl_s)
            return
        if len(self._pending) >= MAX_PENDING_WRITES:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((key, encode_entry(digest, outputs), ttl_s))

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: list[tuple[str, bytes, float]]) -> None:
        if self.remote is None or not self.breaker.allow():
            return
        started = time.perf_counter()
        try:
            await asyncio.gather(*(self.remote.set(key, value, ttl_s) for key, value, ttl_s in batch))
        except Exception as exc:  # a failed write costs nothing but the next hit
            self._failed("set", exc)
            return
        finally:
            self.metrics.operation("set", time.perf_counter() - started)
        self._succeeded()

    def _failed(self, operation: str, exc: Exception) -> None:
        log.warning("cache %s on %s failed: %r", operation, self.name, exc)
        self.metrics.error(operation)
        self.breaker.failure()
        self.metrics.breaker(self.breaker.state)

    def _succeeded(self) -> None:
        self.breaker.success()
        self.metrics.breaker(self.breaker.state)

    async def close(self) -> None:
        if self._pending:
            self._flush()
        if self._writes:
            await asyncio.wait(self._writes, timeout=1.0)
        if self.local is not None:
            self.local.close()
        if self.remote is not None:
            await self.remote.close()
