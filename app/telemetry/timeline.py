"""The last minutes of this worker's metrics at one-second resolution: a ring of samples of the very series
``/metrics`` exposes, for the live page (:mod:`app.live`).

Sampled off the request path: the flush loop calls :meth:`Timeline.sample` once a second, right after moving the
request path's pending observations into the series, so each sample is what a scrape at that moment would read
(of this worker: with several, ``/metrics`` adds up all of them). What a sample costs is counted in
:attr:`Timeline.cpu_seconds`, so the page can show its own overhead.
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
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
        self._capacity = capacity + 1  # one row more than is read: the next to be overwritten (see _rows)
        self._columns: dict[SeriesKey, int] = {}
        self._buckets: dict[SeriesKey, list[tuple[float, SeriesKey]]] = {}
        self._label_sets: dict[str, list[tuple[str, ...]]] = {}
        self._by_first_label: dict[str, list[SeriesKey]] = {}
        self._values = np.full((self._capacity, 256), np.nan)
        self._times = np.full(self._capacity, np.nan)
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
        # Series are created, never removed (a reloaded model keeps its series): a changed count means new ones.
        if self._children() != self._children_seen:
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
            # A family without labels is its own only series; prometheus_client keeps no children for it.
            children: list[tuple[Sequence[str], Any]] = (
                list(family._metrics.items()) if family._labelnames else [((), family)]
            )
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
        self._children_seen = self._children()

    def _children(self) -> list[int]:
        return [len(family._metrics) if family._labelnames else 1 for family in self._families]

    def _column(self, key: SeriesKey) -> int:
        column = self._columns.get(key)
        return self._add_column(key) if column is None else column

    def _add_column(self, key: SeriesKey) -> int:
        column = len(self._columns)
        # Wider first, registered after: a reader in another thread never finds a column the array lacks.
        if column == self._values.shape[1]:
            wider = np.full((self._capacity, 2 * column), np.nan)
            wider[:, :column] = self._values
            self._values = wider
        self._columns[key] = column
        self._label_sets.setdefault(key[0], []).append(key[1:])
        if len(key) > 1:
            self._by_first_label.setdefault(key[1], []).append(key)
        if key[0].endswith("_bucket"):
            buckets = self._buckets.setdefault((key[0], *key[1:-1]), [])
            buckets.append((float(key[-1]), key))
            buckets.sort()
        return column

    def _rows(self, since: float | None) -> np.ndarray:
        """Ring rows in time order, from the last one at or before ``since`` (so rates have a start) onwards. The
        ring's spare row is left out: it is the next to be overwritten, maybe while a page's documents are computed
        from the ring in another thread."""
        kept = min(self._taken, self._capacity - 1)
        rows = (self._taken - kept + np.arange(kept)) % self._capacity
        if since is not None and kept:
            first = int(np.searchsorted(self._times[rows], since, side="right")) - 1
            rows = rows[max(first, 0) :]
        return rows

    def read(self, keys: Sequence[SeriesKey], since: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The times, and each key's values (one column per key, NaN where the series did not exist yet)."""
        rows = self._rows(since)
        columns = np.array([self._columns.get(key, -1) for key in keys], dtype=np.intp)
        values = np.full((len(rows), len(keys)), np.nan)
        known = np.flatnonzero(columns >= 0)
        values[:, known] = self._values[np.ix_(rows, columns[known])]
        return self._times[rows], values

    def frame(self, first_label: str, since: float | None = None, extra: Sequence[SeriesKey] = ()) -> "Frame":
        """Every series whose first label value is ``first_label`` (a model's, say), and ``extra``, read at once: one
        gather instead of one per figure, and every figure from the same samples."""
        keys = [*self._by_first_label.get(first_label, ()), *extra]  # a copy: the sampler may add keys meanwhile
        times, values = self.read(keys, since)
        return Frame(times, values, {key: index for index, key in enumerate(keys)})

    def histogram(self, name: str, *labels: str) -> tuple[list[float], list[SeriesKey]]:
        """A histogram's upper bounds, ascending (``inf`` last), and the keys of its cumulative bucket series."""
        buckets = self._buckets.get((f"{name}_bucket", *labels), [])
        return [bound for bound, _ in buckets], [key for _, key in buckets]

    def label_sets(self, name: str) -> list[tuple[str, ...]]:
        """The label values of every series of sample ``name`` seen so far."""
        return list(self._label_sets.get(name, ()))


@dataclass
class Frame:
    times: np.ndarray
    values: np.ndarray
    index: dict[SeriesKey, int]

    def read(self, keys: Sequence[SeriesKey], counters: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`Timeline.read`, for keys under the frame's first label (NaN for one not sampled yet; with
        ``counters``, 0 instead: a counter counts from its creation)."""
        source = self.counts if counters else self.values
        columns = np.array([self.index.get(key, -1) for key in keys], dtype=np.intp)
        values = np.full((len(self.times), len(keys)), 0.0 if counters else np.nan)
        known = np.flatnonzero(columns >= 0)
        values[:, known] = source[:, columns[known]]
        return self.times, values

    @cached_property
    def counts(self) -> np.ndarray:
        zeroed: np.ndarray = np.nan_to_num(self.values)
        return zeroed


def _le(bound: float) -> str:
    """A bucket's bound as the exposition writes it: ``0.005``, ``1.0``, ``+Inf``."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]
