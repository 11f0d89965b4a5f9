"""The last minutes of this worker's metrics at one-second resolution: a ring of samples of the very series
``/metrics`` exposes, for the live page (:mod:`app.live`).

Sampled off the request path: the flush loop calls :meth:`Timeline.sample` once a second, right after moving the
request path's pending observations into the series, so each sample is what a scrape at that moment would read
(of this worker: with several, ``/metrics`` adds up all of them). What a sample costs is counted in
:attr:`Timeline.cpu_seconds`, so the page can show its own overhead.
"""

import time
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from typing import Any

import numpy as np
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.utils import floatToGoString

SeriesKey = tuple[str, ...]
"""A sample's name, then its label values in the family's label order (``le`` last for a histogram bucket)."""

HISTORY_S = 900
"""Fifteen minutes at one sample a second."""


class Timeline:
    def __init__(self, families: Iterable[MetricWrapperBase], capacity: int = HISTORY_S) -> None:
        self._families = list(families)
        self._capacity = capacity
        self._columns: dict[SeriesKey, int] = {}
        self._buckets: dict[SeriesKey, list[tuple[float, SeriesKey]]] = {}
        self._values = np.full((capacity, 256), np.nan)
        self._times = np.full(capacity, np.nan)
        self._taken = 0
        self._children_seen: list[int] = []
        self._plain: tuple[np.ndarray, list[Any]] = (np.zeros(0, dtype=np.intp), [])
        self._histograms: tuple[np.ndarray, list[list[Any]]] = (np.zeros(0, dtype=np.intp), [])
        self.cpu_seconds = 0.0
        """CPU time the samples have taken on this thread, in all."""
        self.started_cpu = time.process_time()

    @property
    def taken(self) -> int:
        return self._taken

    def sample(self, now: float) -> None:
        """Record every series' current value as at ``now`` (seconds since the epoch)."""
        started = time.thread_time()
        if [len(family._metrics) for family in self._families] != self._children_seen:
            self._bind()
        row = self._values[self._taken % self._capacity]
        row[:] = np.nan
        columns, holders = self._plain
        row[columns] = [holder.get() for holder in holders]
        columns, histograms = self._histograms
        # A histogram's buckets are kept per bucket; the exposition (and so the page) shows them cumulative.
        row[columns] = list(chain.from_iterable(accumulate(bucket.get() for bucket in child) for child in histograms))
        self._times[self._taken % self._capacity] = now
        self._taken += 1
        self.cpu_seconds += time.thread_time() - started

    def _bind(self) -> None:
        """Find every child series of the families and the value holders to read them from: the same values the
        exposition renders (prometheus_client's ``_metrics``, ``_value``, ``_buckets``: private, pinned by
        tests/telemetry/test_timeline.py to the versions the project allows)."""
        plain: tuple[list[int], list[Any]] = ([], [])
        histograms: tuple[list[int], list[list[Any]]] = ([], [])
        for family in self._families:
            name, kind = family._name, family._type
            children: list[tuple[Sequence[str], Any]] = list(family._metrics.items())
            for labels, child in children:
                if kind == "histogram":
                    bounds = child._upper_bounds
                    histograms[0].extend(self._column((f"{name}_bucket", *labels, _le(b))) for b in bounds)
                    histograms[1].append(child._buckets)
                    plain[0].append(self._column((f"{name}_sum", *labels)))
                    plain[1].append(child._sum)
                else:
                    plain[0].append(self._column((f"{name}_total" if kind == "counter" else name, *labels)))
                    plain[1].append(child._value)
        self._plain = (np.asarray(plain[0], dtype=np.intp), plain[1])
        self._histograms = (np.asarray(histograms[0], dtype=np.intp), histograms[1])
        self._children_seen = [len(family._metrics) for family in self._families]

    def _column(self, key: SeriesKey) -> int:
        column = self._columns.get(key)
        return self._add_column(key) if column is None else column

    def _add_column(self, key: SeriesKey) -> int:
        column = self._columns[key] = len(self._columns)
        if column == self._values.shape[1]:
            wider = np.full((self._capacity, 2 * column), np.nan)
            wider[:, :column] = self._values
            self._values = wider
        if key[0].endswith("_bucket"):
            buckets = self._buckets.setdefault((key[0], *key[1:-1]), [])
            buckets.append((float(key[-1]), key))
            buckets.sort()
        return column

    def _rows(self, since: float | None) -> np.ndarray:
        """Ring rows in time order, from the last one at or before ``since`` (so rates have a start) onwards."""
        kept = min(self._taken, self._capacity)
        rows = (self._taken - kept + np.arange(kept)) % self._capacity
        if since is not None and kept:
            first = int(np.searchsorted(self._times[rows], since, side="right")) - 1
            rows = rows[max(first, 0) :]
        return rows

    def read(self, keys: Sequence[SeriesKey], since: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The times, and each key's values (one column per key, NaN where the series did not exist yet)."""
        rows = self._rows(since)
        values = np.full((len(rows), len(keys)), np.nan)
        for index, key in enumerate(keys):
            column = self._columns.get(key)
            if column is not None:
                values[:, index] = self._values[rows, column]
        return self._times[rows], values

    def histogram(self, name: str, *labels: str) -> tuple[list[float], list[SeriesKey]]:
        """A histogram's upper bounds, ascending (``inf`` last), and the keys of its cumulative bucket series."""
        buckets = self._buckets.get((f"{name}_bucket", *labels), [])
        return [bound for bound, _ in buckets], [key for _, key in buckets]

    def label_sets(self, name: str) -> list[tuple[str, ...]]:
        """The label values of every series of sample ``name`` seen so far."""
        return [key[1:] for key in self._columns if key[0] == name]


def _le(bound: float) -> str:
    """A bucket's bound as the exposition writes it: ``0.005``, ``1.0``, ``+Inf``."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]
