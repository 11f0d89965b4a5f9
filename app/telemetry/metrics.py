"""Every Prometheus metric Servometer exports, with names, labels and buckets in one place.

Each app owns its own ``CollectorRegistry`` so several apps (tests, workers) never collide, and label values
come only from the model repository: a request for an unknown model creates no series.
"""

import os
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.config import LATENCY_BUCKETS
from app.telemetry.stats import VariantStats


class DriftFigures(Protocol):
    """One feature's drift, as monitoring computes it (telemetry depends on no package above it)."""

    @property
    def feature(self) -> str: ...

    @property
    def psi(self) -> float: ...

    @property
    def ks_statistic(self) -> float: ...

    @property
    def ks_pvalue(self) -> float: ...


# prometheus_client picks file-backed values at import when PROMETHEUS_MULTIPROC_DIR is set.
MULTIPROCESS = values.ValueClass is not values.MutexValue

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Cache operations: tens of microseconds in memory, a millisecond or so over the network to Redis.
CACHE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
CACHE_RESULTS = ("hit", "miss", "bypass", "error", "skipped")
OUTCOMES = ("success", "client_error", "client_timeout", "rejected", "timeout", "server_error")
DISPATCH_REASONS = ("full", "preferred", "delay", "idle")
DROP_REASONS = ("queue_full", "priority_queue_full", "timeout", "client_timeout", "disconnected", "shutdown")


class Metrics:
    def __init__(self, latency_buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._variants: dict[tuple[str, str], VariantMetrics] = {}
        self._caches: list[CacheMetrics] = []
        if not MULTIPROCESS:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        variant = ["model", "variant"]
        self.requests = Counter(
            "servometer_requests",
            "Inference requests answered, by outcome "
            "(success, client_error, client_timeout, rejected, timeout, server_error).",
            [*variant, "outcome"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "servometer_request_duration_seconds",
            "End-to-end inference latency, from the request's arrival to its response being ready.",
            variant,
            buckets=latency_buckets,
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "servometer_model_ready",
            "1 when the variant is loaded and serving, else 0.",
            variant,
            multiprocess_mode="livemin",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "servometer_batch_size",
            "Samples in each model call the batcher dispatched.",
            variant,
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batches = Counter(
            "servometer_batches",
            "Model calls dispatched, by why: full (max_batch_size reached or batching off), "
            "preferred (a preferred batch size was ready), delay (the oldest request waited max_queue_delay_ms), "
            "idle (adaptive_delay: no other request in sight to join the batch).",
            [*variant, "reason"],
            registry=self.registry,
        )
        self.queue_duration = Histogram(
            "servometer_queue_duration_seconds",
            "Time each request waited in the batcher's queue before its model call started.",
            variant,
            buckets=latency_buckets,
            registry=self.registry,
        )
        self.compute_duration = Histogram(
            "servometer_compute_duration_seconds",
            "Model compute time of each batch (one model call).",
            variant,
            buckets=latency_buckets,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "servometer_queue_depth",
            "Requests waiting in the batcher's queue.",
            variant,
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.queue_capacity = Gauge(
            "servometer_queue_capacity",
            "Requests the batcher's queue holds before it rejects (max_queue_size): the scale for queue depth.",
            variant,
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.queue_dropped = Counter(
            "servometer_queue_dropped_requests",
            "Requests that never reached the model: queue_full / priority_queue_full (rejected), timeout, "
            "disconnected (client gone), shutdown.",
            [*variant, "reason"],
            registry=self.registry,
        )

        self.cache_lookups = Counter(
            "servometer_cache_lookups",
            "Result cache lookups: hit, miss, bypass (asked not to use the cache), error (backend failed: "
            "answered by the model), skipped (circuit breaker open: answered by the model).",
            ["model", "backend", "result"],
            registry=self.registry,
        )
        self.cache_coalesced = Counter(
            "servometer_cache_coalesced_requests",
            "Requests answered by an identical request already computing (single flight), not by a model call.",
            ["model"],
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "servometer_cache_errors",
            "Cache backend failures by operation: get, set, corrupt (an entry that failed its checks).",
            ["backend", "operation"],
            registry=self.registry,
        )
        self.cache_operation_duration = Histogram(
            "servometer_cache_operation_duration_seconds",
            "Latency of cache backend operations (get, set).",
            ["backend", "operation"],
            buckets=CACHE_BUCKETS,
            registry=self.registry,
        )
        self.cache_stored_bytes = Gauge(
            "servometer_cache_stored_bytes",
            "Bytes held by the in-memory cache.",
            ["backend"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "servometer_cache_entries",
            "Entries held by the in-memory cache.",
            ["backend"],
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.cache_breaker_state = Gauge(
            "servometer_cache_breaker_state",
            "Cache circuit breaker: 0 closed (calls flow), 1 half-open (probing), 2 open (backend not called).",
            ["backend"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )

        self.requests_in_flight = Gauge(
            "servometer_requests_in_flight",
            "Inference requests received and not yet answered.",
            variant,
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.inferences = Counter(
            "servometer_inferences",
            "Samples computed by the model (a batch of 8 counts 8; cache hits count none).",
            variant,
            registry=self.registry,
        )
        self.model_load_duration = Gauge(
            "servometer_model_load_duration_seconds",
            "Time the variant took to load.",
            variant,
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "servometer_model_info",
            "Always 1; the labels describe the variant: runtime, precision, device and model file digest.",
            [*variant, "runtime", "precision", "device", "digest"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.cost = Counter(
            "servometer_cost_dollars",
            "Machine cost attributed to the variant: its model compute seconds times the configured price "
            "(price_per_hour, plus gpu_price_per_hour on a GPU). Divide by servometer_inferences_total for cost per "
            "inference.",
            variant,
            registry=self.registry,
        )
        self.gpu_busy = Counter(
            "servometer_gpu_busy_seconds",
            "GPU-seconds used by the variant, measured around each batch it runs on a GPU.",
            variant,
            registry=self.registry,
        )
        self.price_per_hour = Gauge(
            "servometer_price_per_hour_dollars",
            "Configured price of the machine (resource=machine) and of one GPU (resource=gpu), per hour.",
            ["resource"],
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        objective = ["model"]
        self.objective_latency = Gauge(
            "servometer_objective_latency_p99_seconds", "The model's p99 latency objective.", objective,
            multiprocess_mode="livemax", registry=self.registry,
        )  # fmt: skip
        self.objective_error_ratio = Gauge(
            "servometer_objective_error_ratio",
            "The model's error ratio objective.",
            objective,
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.objective_cost = Gauge(
            "servometer_objective_cost_per_1k_inferences_dollars",
            "The model's cost budget per 1,000 inferences.",
            objective,
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        self.objective_drift = Gauge(
            "servometer_objective_max_drift_psi", "The model's drift threshold (population stability index).",
            objective, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.objective_live_accuracy = Gauge(
            "servometer_objective_min_live_accuracy", "The model's live accuracy objective.",
            objective, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.objective_throughput = Gauge(
            "servometer_objective_min_throughput_per_second",
            "The model's minimum throughput objective, in inferences per second.",
            objective,
            multiprocess_mode="livemax",
            registry=self.registry,
        )

        variant_report = ["model", "variant"]
        self.variant_quality = Gauge(
            "servometer_variant_quality",
            "Variant report: quality on the model's evaluation set (metric: accuracy, macro_f1, agreement, "
            "cosine_mean, cosine_min, max_abs_error, quality_loss).",
            [*variant_report, "metric"], multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.variant_latency = Gauge(
            "servometer_variant_report_latency_seconds",
            "Variant report: model-call latency measured at batch 1 and at the largest batch.",
            [*variant_report, "batch", "quantile"], multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.variant_throughput = Gauge(
            "servometer_variant_report_throughput",
            "Variant report: samples per second at the largest batch.",
            variant_report, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.variant_cost = Gauge(
            "servometer_variant_report_cost_per_1k_inferences_dollars",
            "Variant report: dollars per 1,000 inferences at the largest batch, from price_per_hour.",
            variant_report, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        drift = ["model", "variant", "feature"]
        self.drift_psi = Gauge(
            "servometer_drift_psi",
            "Population stability index of an input (feature: its name) or of the predictions (feature: prediction) "
            "over the sampled window, against the build's reference statistics.",
            drift, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.drift_ks = Gauge(
            "servometer_drift_ks_statistic",
            "Two-sample Kolmogorov-Smirnov statistic of per-sample summaries, window against reference.",
            drift, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.drift_ks_pvalue = Gauge(
            "servometer_drift_ks_pvalue", "p-value of the Kolmogorov-Smirnov statistic.",
            drift, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.drift_samples = Gauge(
            "servometer_drift_window_samples", "Sampled requests in the drift window.",
            variant_report, multiprocess_mode="livesum", registry=self.registry,
        )  # fmt: skip
        self.live_accuracy = Gauge(
            "servometer_live_accuracy",
            "Accuracy over the feedback window (share judged relevant for embedding models).",
            variant_report, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.live_macro_f1 = Gauge(
            "servometer_live_macro_f1", "Macro-F1 over the feedback window (classifiers).",
            variant_report, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.live_samples = Gauge(
            "servometer_live_feedback_samples", "Feedback items in the window live accuracy is computed over.",
            variant_report, multiprocess_mode="mostrecent", registry=self.registry,
        )  # fmt: skip
        self.feedback = Counter(
            "servometer_feedback",
            "Feedback received on earlier answers (result: correct, incorrect).",
            [*variant_report, "result"], registry=self.registry,
        )  # fmt: skip
        self.shadow_comparisons = Counter(
            "servometer_shadow_comparisons",
            "Shadow traffic: the candidate variant's answers compared with the served ones (result: agree, "
            "disagree, error, skipped).",
            ["model", "variant", "result"], registry=self.registry,
        )  # fmt: skip

        self.loop_lag = Gauge(
            "servometer_event_loop_lag_seconds",
            "How late the event loop ran a callback scheduled from another thread (sampled every "
            "loop_lag_interval_s; while the loop stalls, the time so far). Every request waits at least this long.",
            multiprocess_mode="livemax",
            registry=self.registry,
        )

        self.gpu_available = Gauge(
            "servometer_gpu_available",
            "1 when NVML reports GPUs to sample, else 0.",
            multiprocess_mode="livemax",
            registry=self.registry,
        )
        gpu = ["gpu", "uuid"]
        self.gpu_utilization = Gauge(
            "servometer_gpu_utilization_ratio", "GPU busy ratio over NVML's last sample period.", gpu,
            multiprocess_mode="livemostrecent", registry=self.registry,
        )  # fmt: skip
        self.gpu_memory_used = Gauge(
            "servometer_gpu_memory_used_bytes",
            "GPU memory in use.",
            gpu,
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.gpu_memory_total = Gauge(
            "servometer_gpu_memory_total_bytes",
            "GPU memory in all.",
            gpu,
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )
        self.gpu_power = Gauge(
            "servometer_gpu_power_watts",
            "GPU power draw.",
            gpu,
            multiprocess_mode="livemostrecent",
            registry=self.registry,
        )

    def for_cache(self, backend: str) -> "CacheMetrics":
        cache = CacheMetrics(self, backend)
        self._caches.append(cache)
        return cache

    def register_variant(self, model: str, variant: str, ready: bool) -> None:
        """Create the variant's series up front, so dashboards see zeros rather than gaps."""
        self.for_variant(model, variant)
        self.model_ready.labels(model, variant).set(1 if ready else 0)

    def describe_variant(
        self, model: str, variant: str, *, runtime: str, precision: str, device: str, digest: str, load_seconds: float
    ) -> None:
        self.model_info.labels(model, variant, runtime, precision, device, digest[:16]).set(1)
        self.model_load_duration.labels(model, variant).set(load_seconds)

    def set_prices(self, machine_per_hour: float, gpu_per_hour: float) -> None:
        self.price_per_hour.labels("machine").set(machine_per_hour)
        self.price_per_hour.labels("gpu").set(gpu_per_hour)

    def set_objectives(
        self,
        model: str,
        latency_p99_s: float | None,
        error_ratio: float | None,
        cost_per_1k: float | None,
        min_throughput: float | None,
        max_drift_psi: float | None = None,
        min_live_accuracy: float | None = None,
    ) -> None:
        for gauge, value in (
            (self.objective_latency, latency_p99_s),
            (self.objective_error_ratio, error_ratio),
            (self.objective_cost, cost_per_1k),
            (self.objective_throughput, min_throughput),
            (self.objective_drift, max_drift_psi),
            (self.objective_live_accuracy, min_live_accuracy),
        ):
            if value is not None:
                gauge.labels(model).set(value)

    def set_variant_report(
        self,
        model: str,
        variant: str,
        quality: Mapping[str, float | None],
        latency: Mapping[str, tuple[float, float]],
        throughput: float,
        cost_per_1k: float | None,
    ) -> None:
        """One variant's figures from its report: quality by metric, (p50, p99) seconds by batch ("1", "max")."""
        labels = (model, variant)
        for metric, value in quality.items():
            if value is not None:
                self.variant_quality.labels(*labels, metric).set(value)
        for batch, (p50, p99) in latency.items():
            self.variant_latency.labels(*labels, batch, "0.5").set(p50)
            self.variant_latency.labels(*labels, batch, "0.99").set(p99)
        self.variant_throughput.labels(*labels).set(throughput)
        if cost_per_1k is not None:
            self.variant_cost.labels(*labels).set(cost_per_1k)

    def set_drift(self, model: str, variant: str, samples: int, scores: Iterable[DriftFigures]) -> None:
        self.drift_samples.labels(model, variant).set(samples)
        for score in scores:
            self.drift_psi.labels(model, variant, score.feature).set(score.psi)
            self.drift_ks.labels(model, variant, score.feature).set(score.ks_statistic)
            self.drift_ks_pvalue.labels(model, variant, score.feature).set(score.ks_pvalue)

    def set_live(self, model: str, variant: str, correct: bool, samples: int, accuracy: float, f1: float) -> None:
        self.feedback.labels(model, variant, "correct" if correct else "incorrect").inc()
        self.live_samples.labels(model, variant).set(samples)
        self.live_accuracy.labels(model, variant).set(accuracy)
        self.live_macro_f1.labels(model, variant).set(f1)

    def shadow(self, model: str, candidate: str, result: str) -> None:
        self.shadow_comparisons.labels(model, candidate, result).inc()

    def for_variant(self, model: str, variant: str) -> "VariantMetrics":
        """The variant's series, bound once and reused, so the request path skips the label lookups."""
        bound = self._variants.get((model, variant))
        if bound is None:
            bound = self._variants[(model, variant)] = VariantMetrics(self, model, variant)
        return bound

    def close(self) -> None:
        """A stopping worker's live gauges (queue depth, in flight, ...) stop counting towards the others'."""
        if MULTIPROCESS:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        """Move every variant's pending observations into the Prometheus series."""
        for variant in self._variants.values():
            variant.flush()
        for cache in self._caches:
            cache.flush()

    def sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's current value, pending observations included (what a scrape would show)."""
        self.flush()
        return self.registry.get_sample_value(name, labels)

    def render(self) -> bytes:
        """The exposition. With several workers (prometheus_client's multiprocess mode, chosen when the CLI sets
        PROMETHEUS_MULTIPROC_DIR) it adds up every worker's files; process collectors are then left out, since
        they would describe only the worker that happens to answer the scrape."""
        self.flush()
        if not MULTIPROCESS:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class _Tally:
    """A counter's increments kept as a plain float until the next flush."""

    __slots__ = ("child", "value")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.value = 0.0

    def flush(self) -> None:
        if self.value:
            self.child.inc(self.value)
            self.value = 0.0


class _Buckets:
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


class VariantMetrics:
    """One variant's series. The request path only adds to plain Python numbers; :meth:`flush` (on every scrape
    and every second) moves them into the Prometheus series. Measured: per-observation metric updates cost
    ~12% of digits' throughput at concurrency 32."""

    def __init__(self, metrics: Metrics, model: str, variant: str) -> None:
        labels = (model, variant)
        self._requests = {outcome: _Tally(metrics.requests.labels(*labels, outcome)) for outcome in OUTCOMES}
        self._request_duration = _Buckets(metrics.request_duration.labels(*labels))
        self._batch_size = _Buckets(metrics.batch_size.labels(*labels))
        self._batches = {reason: _Tally(metrics.batches.labels(*labels, reason)) for reason in DISPATCH_REASONS}
        self._queue_duration = _Buckets(metrics.queue_duration.labels(*labels))
        self._compute_duration = _Buckets(metrics.compute_duration.labels(*labels))
        self._inferences = _Tally(metrics.inferences.labels(*labels))
        self._cost = _Tally(metrics.cost.labels(*labels))
        self._gpu_busy = _Tally(metrics.gpu_busy.labels(*labels))
        self._deferred: list[_Tally | _Buckets] = [
            *self._requests.values(), self._request_duration, self._batch_size, *self._batches.values(),
            self._queue_duration, self._compute_duration, self._inferences, self._cost, self._gpu_busy,
        ]  # fmt: skip
        self._queue_depth_gauge = metrics.queue_depth.labels(*labels)
        self.queue_capacity = metrics.queue_capacity.labels(*labels)
        self._in_flight_gauge = metrics.requests_in_flight.labels(*labels)
        self._dropped = {reason: metrics.queue_dropped.labels(*labels, reason) for reason in DROP_REASONS}
        self._depth = 0
        self._in_flight = 0  # requests received and not answered
        self._dollars_per_compute_second = 0.0
        self._on_gpu = False
        self.stats = VariantStats()

    def flush(self) -> None:
        for series in self._deferred:
            series.flush()
        self._queue_depth_gauge.set(self._depth)
        self._in_flight_gauge.set(self._in_flight)

    def request_received(self) -> None:
        """A request's body has arrived: it is in flight until :meth:`observe_request`'s caller says it is done."""
        self._in_flight += 1

    def request_done(self) -> None:
        self._in_flight -= 1

    def set_pricing(self, on_gpu: bool, dollars_per_compute_second: float) -> None:
        """Where the variant computes and what a second of it costs (set when it is loaded)."""
        self._on_gpu = on_gpu
        self._dollars_per_compute_second = dollars_per_compute_second

    def observe_request(self, outcome: str, seconds: float) -> None:
        self._requests[outcome].value += 1
        self._request_duration.observe(seconds)
        self.stats.answered(outcome == "success", seconds)

    def cache_lookup(self, hit: bool, seconds: float) -> None:
        (self.stats.cache_hit if hit else self.stats.cache_miss).add(seconds)
        if hit:
            self.stats.queue.add(0.0)

    def queue_depth(self, depth: int) -> None:
        self._depth = depth

    def dispatched(self, reason: str, samples: int, waits: list[float]) -> None:
        self._batches[reason].value += 1
        self._batch_size.observe(samples)
        for wait in waits:
            self._queue_duration.observe(wait)
        self.stats.queue.add(sum(waits), len(waits))

    def computed(self, samples: int, requests: int, seconds: float, input_s: float, output_s: float) -> None:
        """One model call of ``samples`` for ``requests`` requests: compute time, cost, GPU time, statistics."""
        self._compute_duration.observe(seconds)
        self._inferences.value += samples
        self._cost.value += seconds * self._dollars_per_compute_second
        if self._on_gpu:
            self._gpu_busy.value += seconds
        stats = self.stats
        stats.inference_count += samples
        stats.execution_count += 1
        stats.compute_infer.add(seconds, requests)
        stats.compute_input.add(input_s, requests)
        stats.compute_output.add(output_s, requests)

    def dropped(self, reason: str) -> None:
        self._dropped[reason].inc()


class CacheMetrics:
    """The result cache's series for one backend; lookups and operation times are flushed like a variant's."""

    def __init__(self, metrics: Metrics, backend: str) -> None:
        self._metrics = metrics
        self.backend = backend
        self._lookups: dict[tuple[str, str], _Tally] = {}
        self._durations = {op: _Buckets(metrics.cache_operation_duration.labels(backend, op)) for op in ("get", "set")}
        self._breaker = metrics.cache_breaker_state.labels(backend)
        self._breaker.set(0)
        for operation in ("get", "set", "corrupt"):
            metrics.cache_errors.labels(backend, operation)

    def register_model(self, model: str) -> None:
        for result in CACHE_RESULTS:
            self._lookup_tally(model, result)
        self._metrics.cache_coalesced.labels(model)

    def _lookup_tally(self, model: str, result: str) -> _Tally:
        tally = self._lookups.get((model, result))
        if tally is None:
            child = self._metrics.cache_lookups.labels(model, self.backend, result)
            tally = self._lookups[(model, result)] = _Tally(child)
        return tally

    def flush(self) -> None:
        for tally in self._lookups.values():
            tally.flush()
        for buckets in self._durations.values():
            buckets.flush()

    def lookup(self, model: str, result: str) -> None:
        self._lookup_tally(model, result).value += 1

    def coalesced(self, model: str) -> None:
        self._metrics.cache_coalesced.labels(model).inc()

    def error(self, operation: str) -> None:
        self._metrics.cache_errors.labels(self.backend, operation).inc()

    def operation(self, operation: str, seconds: float) -> None:
        self._durations[operation].observe(seconds)

    def stored(self, stored_bytes: int, entries: int) -> None:
        self._metrics.cache_stored_bytes.labels(self.backend).set(stored_bytes)
        self._metrics.cache_entries.labels(self.backend).set(entries)

    def breaker(self, state: int) -> None:
        self._breaker.set(state)
