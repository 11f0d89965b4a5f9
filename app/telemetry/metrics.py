"""Every Prometheus metric Servometer exports, with names, labels and buckets in one place.

Each app owns its own ``CollectorRegistry`` so several apps (tests, workers) never collide, and label values
come only from the model repository: a request for an unknown model creates no series.
"""

import os
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
from app.telemetry.families import BATCH_SIZE_BUCKETS, CACHE_BUCKETS, FAMILIES, Family
from app.telemetry.views import CacheMetrics, VariantMetrics


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


class Metrics:
    """The families of :mod:`app.telemetry.families`, created in this app's own registry (so several apps, in tests
    or workers, never collide), and the views the producers of figures report through."""

    requests: Counter
    request_duration: Histogram
    model_ready: Gauge
    batch_size: Histogram
    batches: Counter
    queue_duration: Histogram
    compute_duration: Histogram
    process_duration: Histogram
    tokens: Counter
    queue_depth: Gauge
    queue_capacity: Gauge
    queue_dropped: Counter
    cache_lookups: Counter
    cache_coalesced: Counter
    cache_errors: Counter
    cache_operation_duration: Histogram
    cache_stored_bytes: Gauge
    cache_entries: Gauge
    cache_breaker_state: Gauge
    requests_in_flight: Gauge
    inferences: Counter
    model_load_duration: Gauge
    compute_threads: Gauge
    cpus_allowed: Gauge
    model_info: Gauge
    cost: Counter
    gpu_busy: Counter
    price_per_hour: Gauge
    objective_latency: Gauge
    objective_error_ratio: Gauge
    objective_cost: Gauge
    objective_drift: Gauge
    objective_live_accuracy: Gauge
    objective_throughput: Gauge
    variant_quality: Gauge
    variant_latency: Gauge
    variant_throughput: Gauge
    variant_cost: Gauge
    drift_psi: Gauge
    drift_ks: Gauge
    drift_ks_pvalue: Gauge
    drift_samples: Gauge
    live_accuracy: Gauge
    live_macro_f1: Gauge
    live_samples: Gauge
    feedback: Counter
    shadow_comparisons: Counter
    grpc_calls: Counter
    loop_lag: Gauge
    gpu_available: Gauge
    gpu_utilization: Gauge
    gpu_memory_used: Gauge
    gpu_memory_total: Gauge
    gpu_power: Gauge

    def __init__(self, latency_buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._variants: dict[tuple[str, str], VariantMetrics] = {}
        self._caches: list[CacheMetrics] = []
        self._grpc_counters: dict[tuple[str, str], Counter] = {}
        if not MULTIPROCESS:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        buckets = {"latency": tuple(latency_buckets), "batch": BATCH_SIZE_BUCKETS, "cache": CACHE_BUCKETS}
        for family in FAMILIES:
            setattr(self, family.attribute, _create(family, self.registry, buckets))

    def for_cache(self, backend: str) -> CacheMetrics:
        cache = CacheMetrics(self, backend)
        self._caches.append(cache)
        return cache

    def register_variant(self, model: str, variant: str, ready: bool) -> None:
        """Create the variant's series up front, so dashboards see zeros rather than gaps."""
        self.for_variant(model, variant)
        self.model_ready.labels(model, variant).set(1 if ready else 0)

    def describe_variant(
        self,
        model: str,
        variant: str,
        *,
        runtime: str,
        precision: str,
        device: str,
        digest: str,
        load_seconds: float,
        threads: int,
    ) -> None:
        self.model_info.labels(model, variant, runtime, precision, device, digest[:16]).set(1)
        self.model_load_duration.labels(model, variant).set(load_seconds)
        self.compute_threads.labels(model, variant).set(threads)

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

    def grpc_call(self, method: str, code: str) -> None:
        # Bound once per (method, code): a label lookup on every call was 2% of a gRPC server's time.
        counter = self._grpc_counters.get((method, code))
        if counter is None:
            counter = self._grpc_counters[(method, code)] = self.grpc_calls.labels(method, code)
        counter.inc()

    def for_variant(self, model: str, variant: str) -> VariantMetrics:
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


def _create(
    family: Family, registry: CollectorRegistry, buckets: Mapping[str, Sequence[float]]
) -> Counter | Gauge | Histogram:
    if family.kind == "counter":
        return Counter(family.name, family.help, family.labels, registry=registry)
    if family.kind == "histogram":
        assert family.buckets is not None
        return Histogram(family.name, family.help, family.labels, buckets=buckets[family.buckets], registry=registry)
    mode: Any = family.multiprocess_mode
    return Gauge(family.name, family.help, family.labels, multiprocess_mode=mode, registry=registry)
