"""Counts and histogram observations kept as plain Python numbers on the request path and moved into their
prometheus_client series on flush: one lock per series (or bucket) per flush instead of one per observation.

The histogram adapter adds to prometheus_client's own bucket and sum values (``_upper_bounds``, ``_buckets``,
``_sum`` of a labelled Histogram): private attributes, written here only, and pinned by
tests/telemetry/test_deferred.py to the prometheus_client versions the project allows.
"""

from bisect import bisect_left
from typing import Any


class DeferredCount:
    """A counter's increments kept as a plain float until the next flush."""

    __slots__ = ("child", "value")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.value = 0.0

    def flush(self) -> None:
        if self.value:
            self.child.inc(self.value)
            self.value = 0.0


class DeferredHistogram:
    """A histogram's observations kept as plain per-bucket counts until the next flush.

    Adds to prometheus_client's own bucket and sum values on flush (``_upper_bounds``, ``_buckets``, ``_sum`` of a
    labelled Histogram): one lock per bucket per flush instead of one per observation.
    """

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        if not any(self.counts):
            return
        for index, count in enumerate(self.counts):
            if count:
                self.child._buckets[index].inc(count)
                self.counts[index] = 0
        self.child._sum.inc(self.total)
        self.total = 0.0
