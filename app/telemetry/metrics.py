"""Every Prometheus metric Servometer exports, with names, labels and buckets in one place.

Each app owns its own ``CollectorRegistry`` so several apps (tests, workers) never collide, and label values
come only from the model repository: a request for an unknown model creates no series.
"""

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Inference spans sub-millisecond cache hits to multi-second batches of a large model.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
)
OUTCOMES = ("success", "client_error", "rejected", "timeout", "server_error")


class Metrics:
    def __init__(self, latency_buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        variant = ["model", "variant"]
        self.requests = Counter(
            "servometer_requests",
            "Inference requests answered, by outcome (success, client_error, rejected, timeout, server_error).",
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
            registry=self.registry,
        )

    def register_variant(self, model: str, variant: str, ready: bool) -> None:
        """Create the variant's series up front, so dashboards see zeros rather than gaps."""
        for outcome in OUTCOMES:
            self.requests.labels(model, variant, outcome)
        self.request_duration.labels(model, variant)
        self.model_ready.labels(model, variant).set(1 if ready else 0)

    def observe_request(self, model: str, variant: str, outcome: str, seconds: float) -> None:
        self.requests.labels(model, variant, outcome).inc()
        self.request_duration.labels(model, variant).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
