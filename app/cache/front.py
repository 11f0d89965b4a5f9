"""The result cache in front of a model: a hit answers at once; on a miss, identical requests arriving together
share one computation (single flight), whose answer is stored once; for a model whose requests stop repeating,
the cache steps aside (:mod:`app.cache.admission`). The cache's own bookkeeping (lookups timed, bypasses, passes
and coalesced requests counted) lives here with it."""

import time
from collections.abc import Awaitable, Callable

import numpy as np

from app.cache.admission import Admission
from app.cache.cache import ResultCache
from app.cache.single_flight import SingleFlight
from app.errors import InvalidRequest, ModelFailed
from app.telemetry.views import VariantMetrics

# Errors an identical request would get too, so single-flight followers share them; any other failure of the
# leader (its client left, its queue timeout) is its own, and a follower computes for itself.
_SHARED_ERRORS = (ModelFailed, InvalidRequest)

Outputs = dict[str, np.ndarray]


class CacheFront:
    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self._flights = SingleFlight()
        self._admissions: dict[str, Admission] = {}

    def admits(self, model: str) -> bool:
        """Whether to look this request up, or pass it straight to the model (counted as ``pass``)."""
        admission = self._admissions.get(model)
        if admission is None:
            admission = self._admissions[model] = Admission(self.cache.metrics.tally(model, "pass"))
        return admission.admits()

    def bypassed(self, model: str) -> None:
        """A request asked not to use the cache (``Cache-Control: no-cache`` or ``cache: false``)."""
        self.cache.metrics.lookup(model, "bypass")

    async def answer(
        self,
        model: str,
        key: str,
        digest: str,
        ttl_s: float,
        lookups: VariantMetrics,
        compute: Callable[[], Awaitable[Outputs]],
    ) -> tuple[Outputs, str]:
        """The outputs for ``key`` and whether they were a ``hit`` or a ``miss``."""
        started = time.perf_counter()
        if self.cache.local is not None:
            cached = self.cache.lookup_local(model, key)
        else:
            cached = await self.cache.get(model, key, digest)
        lookups.cache_lookup(cached is not None, time.perf_counter() - started)
        admission = self._admissions[model]
        if cached is not None:
            admission.record(True)
            return cached, "hit"
        produced, shared = await self._flights.run(key, compute, _SHARED_ERRORS)
        admission.record(shared)
        if shared:
            self.cache.metrics.coalesced(model)
        else:
            self.cache.put(key, digest, produced, ttl_s)
        return produced, "miss"
