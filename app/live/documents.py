"""The live page's documents, computed from this worker's timeline: the overview (every variant's figures, totals,
checks and readiness) and one variant's series. Figures are PromQL's on the same series: rates and quantiles over a
window, by :mod:`app.telemetry.series_math`."""

import math
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from app.live.wire import (
    CheckView,
    Figures,
    GpuView,
    ModelView,
    Overview,
    Sampler,
    Totals,
    VariantSeries,
    VariantView,
    Worker,
)
from app.repository.registry import ModelEntry, Registry
from app.telemetry.families import CACHE_RESULTS, DISPATCH_REASONS, DROP_REASONS, OUTCOMES
from app.telemetry.metrics import Metrics
from app.telemetry.objective_checks import CHECK_BY_ALERT, LIVE_ACCURACY_MIN_SAMPLES, Check, judge
from app.telemetry.series_math import average, increase, quantile, rate, ratio
from app.telemetry.timeline import HISTORY_S, Frame, SeriesKey, Timeline

FIGURES_WINDOW_S = 10.0
"""The overview's rates and quantiles: over the last ten seconds, steady enough to read, quick to follow."""
PREVIOUS = 1e-3
"""A window reaching back only to the previous sample: the series' one-second resolution."""
SAMPLED = (
    "requests", "request_duration", "queue_duration", "compute_duration", "batch_size", "batches", "queue_depth",
    "queue_capacity", "requests_in_flight", "queue_dropped", "inferences", "cost", "cache_lookups", "model_ready",
    "objective_latency", "objective_error_ratio", "objective_cost", "objective_drift", "objective_live_accuracy",
    "objective_throughput", "drift_psi", "live_accuracy", "live_samples", "gpu_utilization", "gpu_memory_used",
    "gpu_memory_total", "gpu_power",
)  # fmt: skip
"""The metric families (:class:`app.telemetry.metrics.Metrics` attributes) the page's timeline samples."""
ERROR_OUTCOMES = ("server_error", "timeout", "rejected")
REJECTED = ("queue_full", "priority_queue_full", "timeout")


def sampled_timeline(metrics: Metrics) -> Timeline:
    return Timeline(getattr(metrics, attribute) for attribute in SAMPLED)


class Documents:
    def __init__(self, registry: Registry, timeline: Timeline, workers: int) -> None:
        self.registry = registry
        self.timeline = timeline
        self.workers = workers
        self._overview: tuple[int, Overview] | None = None

    def overview(self) -> Overview:
        """Computed once per sample, however many pages ask."""
        if self._overview is None or self._overview[0] != self.timeline.taken:
            self._overview = (self.timeline.taken, self._compute_overview())
        return self._overview[1]

    def _compute_overview(self) -> Overview:
        timeline = self.timeline
        times, _ = timeline.read([])
        process_cpu = time.process_time() - timeline.started_cpu
        return Overview(
            worker=Worker(pid=os.getpid(), workers=self.workers),
            sampler=Sampler(
                samples=timeline.taken,
                history_s=HISTORY_S,
                cpu_seconds=timeline.cpu_seconds,
                cpu_share=timeline.cpu_seconds / process_cpu if process_cpu > 0 else None,
            ),
            sampled_at=float(times[-1]) if len(times) else None,
            window_s=FIGURES_WINDOW_S,
            models=[self._model(entry) for entry in self.registry.models()],
            gpus=self._gpus(),
        )

    def _model(self, entry: ModelEntry) -> ModelView:
        if entry.manifest is None:
            return ModelView(name=entry.name, error=entry.error, has_report=False, variants=[], checks=[])
        frames: dict[float | None, Frame] = {}  # the model's series, read once for all its variants
        recent = _recent()
        variants = [
            VariantView(
                name=variant.name,
                version=variant.version,
                default=variant.name == entry.manifest.default,
                state=variant.state.value,
                reason=variant.reason,
                **_Variant(self.timeline, entry.name, variant.name, frames, recent).view(),
            )
            for variant in entry.variants.values()
        ]
        return ModelView(
            name=entry.name,
            error="",
            has_report=entry.manifest.evaluation is not None,
            variants=variants,
            checks=self._model_checks(entry),
        )

    def _model_checks(self, entry: ModelEntry) -> list[CheckView]:
        check = CHECK_BY_ALERT["ServometerThroughputBelowObjective"]
        threshold = _objective(lambda keys: self.timeline.read(keys, _recent()), check, entry.name)
        if threshold is None:
            return []
        keys = [("servometer_inferences_total", entry.name, name) for name in entry.variants]
        times, values = self.timeline.read(keys)
        per_second = np.nansum(rate(times, values, check.window_s), axis=1) if keys else np.zeros(len(times))
        return [_view(check, entry.name, threshold[0], threshold[1], times, per_second)]

    def _gpus(self) -> list[GpuView]:
        views = []
        for gpu, uuid in self.timeline.label_sets("servometer_gpu_utilization_ratio"):
            names = ("utilization_ratio", "memory_used_bytes", "memory_total_bytes", "power_watts")
            _, values = self.timeline.read([(f"servometer_gpu_{name}", gpu, uuid) for name in names], _recent())
            last = [_number(v) for v in values[-1]] if len(values) else [None] * 4
            views.append(GpuView(gpu=gpu, uuid=uuid, utilization=last[0], memory_used_bytes=last[1],
                                 memory_total_bytes=last[2], power_watts=last[3]))  # fmt: skip
        return views

    def series(self, model: str, variant: str, since: float | None) -> VariantSeries:
        entry = self.registry.get(model)
        entry.resolve(variant)  # unknown names answer 404 like the rest of the API
        return _Variant(self.timeline, model, variant, {}, _recent()).series(since)


class _Variant:
    """One variant's keys in the timeline and what is computed from them."""

    def __init__(
        self, timeline: Timeline, model: str, variant: str, frames: dict[float | None, Frame], recent: float
    ) -> None:
        self.timeline = timeline
        self.model = model
        self.variant = variant
        self.frames = frames
        self.recent = recent
        """Where reads of the latest samples only start (shared by a model's variants, so they share its frame)."""

    def _keys(self, name: str, values: Sequence[str] | None = None) -> list[SeriesKey]:
        if values is None:
            return [(name, self.model, self.variant)]
        return [(name, self.model, self.variant, value) for value in values]

    def _cache_keys(self, result: str | None = None) -> list[SeriesKey]:
        return [
            ("servometer_cache_lookups_total", *labels)
            for labels in self.timeline.label_sets("servometer_cache_lookups_total")
            if labels[0] == self.model and (result is None or labels[2] == result)
        ]

    def _histogram(self, name: str) -> tuple[list[float], list[SeriesKey]]:
        return self.timeline.histogram(name, self.model, self.variant)

    def view(self) -> dict[str, object]:
        """The figures, totals, checks, drift and live accuracy of :class:`VariantView`."""
        return {
            "figures": self._figures(),
            "totals": self._totals(),
            "checks": self._checks(),
            **self._monitoring(),
        }

    def _frame(self, since: float | None) -> Frame:
        frame = self.frames.get(since)
        if frame is None:
            frame = self.frames[since] = self.timeline.frame(self.model, since)
        return frame

    def _read(self, keys: Sequence[SeriesKey], since: float | None) -> tuple[np.ndarray, np.ndarray]:
        """The model's gauges: NaN before a series existed (no value to show)."""
        return self._frame(since).read(keys)

    def _count(self, keys: Sequence[SeriesKey], since: float | None) -> tuple[np.ndarray, np.ndarray]:
        """The model's counters: 0 before a series existed, so an increase counts from its creation."""
        return self._frame(since).read(keys, counters=True)

    def _figures(self) -> Figures:
        since, window = self.recent, FIGURES_WINDOW_S

        def last(column: np.ndarray) -> float | None:
            return _number(column[-1]) if len(column) else None

        times, requests = self._count(self._keys("servometer_requests_total", OUTCOMES), since)
        _, errors = self._count(self._keys("servometer_requests_total", ERROR_OUTCOMES), since)
        _, counters = self._count(
            [*self._keys("servometer_inferences_total"), *self._keys("servometer_cost_dollars_total"),
             ("servometer_batch_size_sum", self.model, self.variant),
             ("servometer_batch_size_bucket", self.model, self.variant, "+Inf")],
            since,
        )  # fmt: skip
        _, gauges = self._read(
            [*self._keys("servometer_queue_depth"), *self._keys("servometer_queue_capacity"),
             *self._keys("servometer_requests_in_flight")],
            since,
        )  # fmt: skip
        _, lookups = self._count(self._cache_keys(), since)
        _, hits = self._count(self._cache_keys("hit"), since)
        grown = increase(times, counters, window)[0]
        quantiles = {
            name: self._quantiles(name, since, window, qs)
            for name, qs in (
                ("servometer_request_duration_seconds", (0.5, 0.95, 0.99)),
                ("servometer_queue_duration_seconds", (0.99,)),
                ("servometer_compute_duration_seconds", (0.99,)),
            )
        }
        end_to_end = quantiles["servometer_request_duration_seconds"]
        return Figures(
            requests_per_s=last(rate(times, requests.sum(axis=1), window)),
            errors_per_s=last(rate(times, errors.sum(axis=1), window)),
            samples_per_s=last(rate(times, counters[:, 0], window)),
            p50_s=last(end_to_end[0]),
            p95_s=last(end_to_end[1]),
            p99_s=last(end_to_end[2]),
            queue_p99_s=last(quantiles["servometer_queue_duration_seconds"][0]),
            compute_p99_s=last(quantiles["servometer_compute_duration_seconds"][0]),
            mean_batch=last(ratio(grown[:, 2], grown[:, 3])),
            cache_hit_ratio=last(
                ratio(increase(times, hits.sum(axis=1), window)[0], increase(times, lookups.sum(axis=1), window)[0])
            ),  # fmt: skip
            cost_per_1k=last(1000 * ratio(grown[:, 1], grown[:, 0])),
            queue_depth=last(gauges[:, 0]),
            queue_capacity=last(gauges[:, 1]),
            in_flight=last(gauges[:, 2]),
        )

    def _quantiles(self, name: str, since: float | None, window: float, qs: Sequence[float]) -> list[np.ndarray]:
        bounds, keys = self._histogram(name)
        times, buckets = self._count(keys, since)
        grown = increase(times, buckets, window)[0]
        return [quantile(q, bounds, grown) for q in qs]

    def _totals(self) -> Totals:
        def row(keys: list[SeriesKey]) -> np.ndarray:
            _, values = self._read(keys, self.recent)
            return np.nan_to_num(values[-1]) if len(values) else np.zeros(len(keys))

        def latest(keys: list[SeriesKey], names: Sequence[str]) -> dict[str, float]:
            return {name: float(value) for name, value in zip(names, row(keys), strict=True)}

        cache = {result: float(row(self._cache_keys(result)).sum()) for result in CACHE_RESULTS}
        counters = latest(
            [*self._keys("servometer_inferences_total"), *self._keys("servometer_cost_dollars_total")], ("i", "c")
        )
        return Totals(
            requests=latest(self._keys("servometer_requests_total", OUTCOMES), OUTCOMES),
            inferences=counters["i"],
            cost_dollars=counters["c"],
            batches=latest(self._keys("servometer_batches_total", DISPATCH_REASONS), DISPATCH_REASONS),
            dropped=latest(self._keys("servometer_queue_dropped_requests_total", DROP_REASONS), DROP_REASONS),
            cache_lookups=cache,
        )

    def _checks(self) -> list[CheckView]:
        views = []
        for alert, compute in self._conditions().items():
            check = CHECK_BY_ALERT[alert]
            threshold = _objective(lambda keys: self._read(keys, self.recent), check, self.model)
            if threshold is not None:
                for subject, (times, values) in compute(check).items():
                    views.append(_view(check, subject, threshold[0], threshold[1], times, values))
        return views

    def _conditions(self) -> dict[str, Callable[[Check], dict[str, tuple[np.ndarray, np.ndarray]]]]:
        """Each alert's condition value at every sample, by subject (the variant; for drift, each input)."""
        subject = f"{self.model}/{self.variant}"

        def requests(outcomes: Sequence[str], window: float) -> tuple[np.ndarray, np.ndarray]:
            times, values = self._count(self._keys("servometer_requests_total", outcomes), None)
            return times, increase(times, values.sum(axis=1), window)[0]

        def p99(check: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            bounds, keys = self._histogram("servometer_request_duration_seconds")
            times, buckets = self._count(keys, None)
            return {subject: (times, quantile(0.99, bounds, increase(times, buckets, check.window_s)[0]))}

        def errors(check: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            times, failed = requests(ERROR_OUTCOMES, check.window_s)
            return {subject: (times, ratio(failed, requests(OUTCOMES, check.window_s)[1]))}

        def rejected(check: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            times, dropped = self._count(self._keys("servometer_queue_dropped_requests_total", REJECTED), None)
            grown = increase(times, dropped.sum(axis=1), check.window_s)[0]
            return {subject: (times, ratio(grown, requests(OUTCOMES, check.window_s)[1]))}

        def queue(check: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            keys = [*self._keys("servometer_queue_depth"), *self._keys("servometer_queue_capacity")]
            times, values = self._read(keys, None)
            return {subject: (times, ratio(average(times, values[:, 0], check.window_s), values[:, 1]))}

        def cost(check: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            keys = [*self._keys("servometer_cost_dollars_total"), *self._keys("servometer_inferences_total")]
            times, values = self._count(keys, None)
            grown = increase(times, values, check.window_s)[0]
            return {subject: (times, 1000 * ratio(grown[:, 0], grown[:, 1]))}

        def ready(_: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            times, values = self._read(self._keys("servometer_model_ready"), None)
            return {subject: (times, values[:, 0])}

        def drift(prediction: bool) -> Callable[[Check], dict[str, tuple[np.ndarray, np.ndarray]]]:
            def compute(_: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
                features = [f for m, v, f in self.timeline.label_sets("servometer_drift_psi")
                            if (m, v) == (self.model, self.variant) and (f == "prediction") == prediction]  # fmt: skip
                found = {}
                for feature in features:
                    times, values = self._read(self._keys("servometer_drift_psi", (feature,)), None)
                    found[f"{subject} {feature}"] = (times, values[:, 0])
                return found

            return compute

        def accuracy(_: Check) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            keys = [*self._keys("servometer_live_accuracy"), *self._keys("servometer_live_feedback_samples")]
            times, values = self._read(keys, None)
            if np.isnan(values[:, 0]).all():
                return {}
            return {subject: (times, np.where(values[:, 1] >= LIVE_ACCURACY_MIN_SAMPLES, values[:, 0], np.nan))}

        return {
            "ServometerLatencyAboveObjective": p99,
            "ServometerErrorRatioAboveObjective": errors,
            "ServometerRequestsRejected": rejected,
            "ServometerQueueSaturated": queue,
            "ServometerCostOverBudget": cost,
            "ServometerModelNotReady": ready,
            "ServometerInputDrift": drift(False),
            "ServometerPredictionDrift": drift(True),
            "ServometerLiveAccuracyBelowObjective": accuracy,
        }

    def _monitoring(self) -> dict[str, object]:
        keys = [*self._keys("servometer_live_accuracy"), *self._keys("servometer_live_feedback_samples")]
        features = [f for m, v, f in self.timeline.label_sets("servometer_drift_psi") if (m, v) == (self.model,
                    self.variant)]  # fmt: skip
        _, values = self._read([*keys, *self._keys("servometer_drift_psi", features)], self.recent)
        row = [_number(v) for v in values[-1]] if len(values) else [None] * (2 + len(features))
        return {
            "live_accuracy": row[0],
            "live_samples": row[1],
            "drift": {feature: value for feature, value in zip(features, row[2:], strict=True) if value is not None},
        }

    def series(self, since: float | None) -> VariantSeries:
        times, requests = self._count(self._keys("servometer_requests_total", OUTCOMES), since)
        series: dict[str, np.ndarray] = {
            f"requests_{outcome}": rate(times, requests[:, index], PREVIOUS) for index, outcome in enumerate(OUTCOMES)
        }
        for part, name in (("end_to_end", "servometer_request_duration_seconds"),
                           ("queue", "servometer_queue_duration_seconds"),
                           ("compute", "servometer_compute_duration_seconds")):  # fmt: skip
            for q, values in zip((50, 95, 99), self._quantiles(name, since, PREVIOUS, (0.5, 0.95, 0.99)), strict=True):
                series[f"{part}_p{q}"] = values
        _, batches = self._count(self._keys("servometer_batches_total", DISPATCH_REASONS), since)
        for index, reason in enumerate(DISPATCH_REASONS):
            series[f"batches_{reason}"] = rate(times, batches[:, index], PREVIOUS)
        _, queue = self._read([*self._keys("servometer_queue_depth"), *self._keys("servometer_queue_capacity")], since)
        _, counters = self._count(
            [*self._keys("servometer_inferences_total"), *self._keys("servometer_cost_dollars_total")], since
        )
        _, lookups = self._count(self._cache_keys(), since)
        _, hits = self._count(self._cache_keys("hit"), since)
        grown = increase(times, counters, PREVIOUS)[0]
        series["queue_depth"] = queue[:, 0]
        series["queue_capacity"] = queue[:, 1]
        series["samples_per_s"] = rate(times, counters[:, 0], PREVIOUS)
        series["cost_per_1k"] = 1000 * ratio(grown[:, 1], grown[:, 0])
        series["cache_hit_ratio"] = ratio(increase(times, hits.sum(axis=1), PREVIOUS)[0],
                                          increase(times, lookups.sum(axis=1), PREVIOUS)[0])  # fmt: skip
        for gpu, uuid in self.timeline.label_sets("servometer_gpu_utilization_ratio"):
            names = ("utilization_ratio", "memory_used_bytes", "power_watts")
            _, gpus = self.timeline.read([(f"servometer_gpu_{name}", gpu, uuid) for name in names], since)
            for index, name in enumerate(names):
                series[f"gpu{gpu}_{name}"] = gpus[:, index]
        bounds, keys = self._histogram("servometer_batch_size")
        _, buckets = self._count(keys, None)
        counts = np.diff(buckets[-1] - buckets[0], prepend=0.0) if len(buckets) else np.zeros(len(bounds))
        # The first sample only starts the rates: the page already has it, or it has nothing before it.
        start = 1 if since is not None or len(times) > 1 else 0
        return VariantSeries(
            model=self.model,
            variant=self.variant,
            t=[float(t) for t in times[start:]],
            series={name: [_number(v) for v in values[start:]] for name, values in series.items()},
            batch_sizes={_bound(b): float(np.nan_to_num(c)) for b, c in zip(bounds, counts, strict=True)},
        )


Reader = Callable[[Sequence[SeriesKey]], tuple[np.ndarray, np.ndarray]]


def _objective(read: Reader, check: Check, model: str) -> tuple[float, bool] | None:
    """The check's threshold for ``model`` (from its recent samples, read by ``read``) and whether it is the model's
    own objective."""
    if check.objective is not None:
        _, values = read([(check.objective, model)])
        if len(values) and not math.isnan(values[-1, 0]):
            return float(values[-1, 0]), True
    return None if check.default is None else (check.default, False)


def _view(check: Check, subject: str, threshold: float, own: bool, times: np.ndarray, values: np.ndarray) -> CheckView:
    verdict = judge(check, threshold, times, values)
    return CheckView(
        alert=check.alert, title=check.title, subject=subject, threshold=threshold, above=check.above,
        from_objective=own, unit=check.unit, window_s=check.window_s, for_s=check.for_s, value=verdict.value,
        holds=not verdict.breached, breached_for_s=verdict.breached_for_s, firing=verdict.firing,
    )  # fmt: skip


def _recent() -> float:
    """A ``since`` reaching a little past the figures' window, for reads that need only the latest samples."""
    return time.time() - FIGURES_WINDOW_S - 2


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"
