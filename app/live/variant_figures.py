"""One variant's figures from the timeline: the overview's (last seconds, totals since start, drift and live accuracy)
and its series at the timeline's resolution. PromQL's figures on the samples (:mod:`app.telemetry.series_math`)."""

import math
import time
from collections.abc import Sequence

import numpy as np

from app.live.wire import Figures, Totals, VariantSeries
from app.telemetry.families import CACHE_RESULTS, DISPATCH_REASONS, DROP_REASONS, OUTCOMES
from app.telemetry.objective_checks import ERROR_OUTCOMES
from app.telemetry.series_math import increase, quantile, rate, ratio
from app.telemetry.timeline import Frame, SeriesKey, Timeline

HISTORY_S = 900
"""What the page's charts show: the last fifteen minutes."""
FIGURES_WINDOW_S = 10.0
"""The overview's rates and quantiles: over the last ten seconds, steady enough to read, quick to follow."""
PREVIOUS = 1e-3
"""A window reaching back only to the previous sample: the series' one-second resolution."""
GPU_SERIES = ("utilization_ratio", "memory_used_bytes", "memory_total_bytes", "power_watts")
LATENCIES = (
    ("end_to_end", "servometer_request_duration_seconds"),
    ("queue", "servometer_queue_duration_seconds"),
    ("compute", "servometer_compute_duration_seconds"),
)


def recent() -> float:
    """A ``since`` reaching a little past the figures' window, for reads that need only the latest samples."""
    return time.time() - FIGURES_WINDOW_S - 2


def gpu_keys(timeline: Timeline) -> list[SeriesKey]:
    return [
        (f"servometer_gpu_{name}", gpu, uuid)
        for gpu, uuid in timeline.label_sets("servometer_gpu_utilization_ratio")
        for name in GPU_SERIES
    ]


class VariantFigures:
    def __init__(
        self, timeline: Timeline, model: str, variant: str, frames: dict[float | None, Frame], since_recent: float
    ) -> None:
        self.timeline = timeline
        self.model = model
        self.variant = variant
        self.frames = frames
        """The model's series read once per ``since``, shared by its variants (and the GPUs' beside them)."""
        self.since_recent = since_recent

    def keys(self, name: str, values: Sequence[str] | None = None) -> list[SeriesKey]:
        if values is None:
            return [(name, self.model, self.variant)]
        return [(name, self.model, self.variant, value) for value in values]

    def cache_keys(self, result: str | None = None) -> list[SeriesKey]:
        return [
            ("servometer_cache_lookups_total", *labels)
            for labels in self.timeline.label_sets("servometer_cache_lookups_total")
            if labels[0] == self.model and (result is None or labels[2] == result)
        ]

    def drift_features(self) -> list[str]:
        return [
            feature
            for model, variant, feature in self.timeline.label_sets("servometer_drift_psi")
            if (model, variant) == (self.model, self.variant)
        ]

    def histogram(self, name: str) -> tuple[list[float], list[SeriesKey]]:
        return self.timeline.histogram(name, self.model, self.variant)

    def _frame(self, since: float | None) -> Frame:
        frame = self.frames.get(since)
        if frame is None:
            frame = self.frames[since] = self.timeline.frame(self.model, since, gpu_keys(self.timeline))
        return frame

    def read(self, keys: Sequence[SeriesKey], since: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Gauges: NaN before a series existed (no value to show)."""
        return self._frame(since).read(keys)

    def count(self, keys: Sequence[SeriesKey], since: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Counters: 0 before a series existed, so an increase counts from its creation."""
        return self._frame(since).read(keys, counters=True)

    def quantiles(self, name: str, since: float | None, window: float, qs: Sequence[float]) -> list[np.ndarray]:
        bounds, keys = self.histogram(name)
        times, buckets = self.count(keys, since)
        grown = increase(times, buckets, window)[0]
        return [quantile(q, bounds, grown) for q in qs]

    def _shared(self, since: float | None, window: float) -> dict[str, np.ndarray]:
        """What the overview and the series both show, over ``window`` before each sample."""
        times, counters = self.count(
            [*self.keys("servometer_inferences_total"), *self.keys("servometer_cost_dollars_total")], since
        )
        _, lookups = self.count(self.cache_keys(), since)
        _, hits = self.count(self.cache_keys("hit"), since)
        grown = increase(times, counters, window)[0]
        return {
            "samples_per_s": rate(times, counters[:, 0], window),
            "cost_per_1k": 1000 * ratio(grown[:, 1], grown[:, 0]),
            "cache_hit_ratio": ratio(
                increase(times, hits.sum(axis=1), window)[0], increase(times, lookups.sum(axis=1), window)[0]
            ),
        }

    def figures(self) -> Figures:
        since, window = self.since_recent, FIGURES_WINDOW_S

        def last(column: np.ndarray) -> float | None:
            return number(column[-1]) if len(column) else None

        times, requests = self.count(self.keys("servometer_requests_total", OUTCOMES), since)
        _, errors = self.count(self.keys("servometer_requests_total", ERROR_OUTCOMES), since)
        _, batches = self.count(
            [("servometer_batch_size_sum", self.model, self.variant),
             ("servometer_batch_size_bucket", self.model, self.variant, "+Inf")],
            since,
        )  # fmt: skip
        _, gauges = self.read(
            [*self.keys("servometer_queue_depth"), *self.keys("servometer_queue_capacity"),
             *self.keys("servometer_requests_in_flight")],
            since,
        )  # fmt: skip
        grown = increase(times, batches, window)[0]
        shared = self._shared(since, window)
        end_to_end = self.quantiles("servometer_request_duration_seconds", since, window, (0.5, 0.95, 0.99))
        return Figures(
            requests_per_s=last(rate(times, requests.sum(axis=1), window)),
            errors_per_s=last(rate(times, errors.sum(axis=1), window)),
            samples_per_s=last(shared["samples_per_s"]),
            p50_s=last(end_to_end[0]),
            p95_s=last(end_to_end[1]),
            p99_s=last(end_to_end[2]),
            queue_p99_s=last(self.quantiles("servometer_queue_duration_seconds", since, window, (0.99,))[0]),
            compute_p99_s=last(self.quantiles("servometer_compute_duration_seconds", since, window, (0.99,))[0]),
            mean_batch=last(ratio(grown[:, 0], grown[:, 1])),
            cache_hit_ratio=last(shared["cache_hit_ratio"]),
            cost_per_1k=last(shared["cost_per_1k"]),
            queue_depth=last(gauges[:, 0]),
            queue_capacity=last(gauges[:, 1]),
            in_flight=last(gauges[:, 2]),
        )

    def totals(self) -> Totals:
        def row(keys: list[SeriesKey]) -> np.ndarray:
            _, values = self.count(keys, self.since_recent)
            return values[-1] if len(values) else np.zeros(len(keys))

        def latest(keys: list[SeriesKey], names: Sequence[str]) -> dict[str, float]:
            return {name: float(value) for name, value in zip(names, row(keys), strict=True)}

        inferences, cost = row([*self.keys("servometer_inferences_total"), *self.keys("servometer_cost_dollars_total")])
        return Totals(
            requests=latest(self.keys("servometer_requests_total", OUTCOMES), OUTCOMES),
            inferences=float(inferences),
            cost_dollars=float(cost),
            batches=latest(self.keys("servometer_batches_total", DISPATCH_REASONS), DISPATCH_REASONS),
            dropped=latest(self.keys("servometer_queue_dropped_requests_total", DROP_REASONS), DROP_REASONS),
            cache_lookups={result: float(row(self.cache_keys(result)).sum()) for result in CACHE_RESULTS},
        )

    def monitoring(self) -> dict[str, object]:
        """Live accuracy, its judged answers, and drift by input: the latest of each."""
        features = self.drift_features()
        keys = [*self.keys("servometer_live_accuracy"), *self.keys("servometer_live_feedback_samples")]
        _, values = self.read([*keys, *self.keys("servometer_drift_psi", features)], self.since_recent)
        row = [number(v) for v in values[-1]] if len(values) else [None] * (2 + len(features))
        return {
            "live_accuracy": row[0],
            "live_samples": row[1],
            "drift": {feature: value for feature, value in zip(features, row[2:], strict=True) if value is not None},
        }

    def series(self, since: float | None, pid: int) -> VariantSeries:
        if since is None:
            since = time.time() - HISTORY_S
        times, requests = self.count(self.keys("servometer_requests_total", OUTCOMES), since)
        series: dict[str, np.ndarray] = {
            f"requests_{outcome}": rate(times, requests[:, index], PREVIOUS) for index, outcome in enumerate(OUTCOMES)
        }
        for part, name in LATENCIES:
            for q, values in zip((50, 95, 99), self.quantiles(name, since, PREVIOUS, (0.5, 0.95, 0.99)), strict=True):
                series[f"{part}_p{q}"] = values
        _, batches = self.count(self.keys("servometer_batches_total", DISPATCH_REASONS), since)
        for index, reason in enumerate(DISPATCH_REASONS):
            series[f"batches_{reason}"] = rate(times, batches[:, index], PREVIOUS)
        _, queue = self.read([*self.keys("servometer_queue_depth"), *self.keys("servometer_queue_capacity")], since)
        series["queue_depth"], series["queue_capacity"] = queue[:, 0], queue[:, 1]
        series.update(self._shared(since, PREVIOUS))
        keys = gpu_keys(self.timeline)
        _, gpus = self.read(keys, since)  # from the same samples as the rest: every series is as long as t
        for index, (name, gpu, _) in enumerate(keys):
            series[f"gpu{gpu}_{name.removeprefix('servometer_gpu_')}"] = gpus[:, index]
        bounds, buckets_keys = self.histogram("servometer_batch_size")
        _, buckets = self.count(buckets_keys, time.time() - HISTORY_S)
        counts = np.diff(buckets[-1] - buckets[0], prepend=0.0) if len(buckets) else np.zeros(len(bounds))
        # The first sample (the last at or before ``since``) only starts the rates: the page already has it, or it is
        # the oldest kept, with nothing before it.
        start = 1
        return VariantSeries(
            model=self.model,
            variant=self.variant,
            pid=pid,
            t=[float(t) for t in times[start:]],
            series={name: [number(v) for v in values[start:]] for name, values in series.items()},
            batch_sizes={_bound(b): float(c) for b, c in zip(bounds, counts, strict=True)},
        )


def number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"
