"""Whether a request is worth a cache lookup: the cache steps aside for a model whose recent requests do not
repeat, and comes back as soon as they do.

With every request new (unique inputs), each lookup is pure cost: the key's hash, the lookup, the copy stored
for nobody (measured: a fifth of digits' request path). So each model keeps a moving average of its hit ratio;
while it is under :data:`LOW_HIT_RATIO` only one request in :data:`PROBE_EVERY` is looked up and stored (result
``pass`` for the others), enough for repeats to be found again: a couple of probe hits lift the average back
over the threshold, and every request is looked up again.
"""

from app.telemetry.deferred import DeferredCount

LOW_HIT_RATIO = 0.02
"""Below this share of hits (coalesced requests count as hits), the cache only probes."""
PROBE_EVERY = 16
"""While probing, one request in this many is looked up and stored."""
_WEIGHT = 1 / 64
"""Weight of each lookup in the moving average: about the last 64 lookups decide."""


class Admission:
    """One model's hit ratio and probing countdown."""

    __slots__ = ("hit_ratio", "_countdown", "_passes")

    def __init__(self, passes: DeferredCount | None = None) -> None:
        self.hit_ratio = 1.0  # a model starts cached: its first requests find out
        self._countdown = 0
        self._passes = passes
        """The model's ``result="pass"`` lookup counter."""

    def admits(self) -> bool:
        """Whether this request is looked up (and stored on a miss); a request that is not counts as a pass."""
        if self.hit_ratio >= LOW_HIT_RATIO:
            return True
        self._countdown -= 1
        if self._countdown > 0:
            if self._passes is not None:
                self._passes.value += 1
            return False
        self._countdown = PROBE_EVERY
        return True

    def record(self, hit: bool) -> None:
        self.hit_ratio += ((1.0 if hit else 0.0) - self.hit_ratio) * _WEIGHT
