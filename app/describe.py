"""What the metrics say about loaded models once they are loaded (or reloaded through the management API):
readiness, info, load time, prices, cost rates, objectives, and zeroed cache series."""

from collections.abc import Iterable

from app.config import Settings
from app.repository.registry import ModelEntry, VariantState
from app.runtimes.cpus import read_allowance
from app.telemetry.metrics import Metrics
from app.telemetry.views import CacheMetrics


def describe(
    entries: Iterable[ModelEntry], metrics: Metrics, cache_metrics: CacheMetrics | None, settings: Settings
) -> None:
    """``cache_metrics`` None: no result cache."""
    metrics.set_prices(settings.price_per_hour, settings.gpu_price_per_hour)
    metrics.cpus_allowed.set(read_allowance().cpus)
    for entry in entries:
        if entry.manifest is not None:
            if cache_metrics is not None and entry.manifest.cache.enabled:
                cache_metrics.register_model(entry.name)
            objectives = entry.manifest.objectives
            metrics.set_objectives(
                entry.name,
                objectives.latency_p99_s,
                objectives.error_ratio,
                objectives.cost_per_1k_inferences,
                objectives.min_throughput,
                objectives.max_drift_psi,
                objectives.min_live_accuracy,
            )
        for variant in entry.variants.values():
            runtime = variant.runtime if variant.state is VariantState.READY else None
            metrics.register_variant(variant.model_name, variant.name, runtime is not None)
            if runtime is None:
                continue
            device = runtime.device
            metrics.describe_variant(
                variant.model_name,
                variant.name,
                runtime=runtime.platform,
                precision=variant.spec.precision,
                device=device,
                digest=variant.digest,
                load_seconds=variant.load_seconds,
                threads=runtime.threads,
            )
            on_gpu = device.startswith("cuda")
            gpu = settings.gpu_price_per_hour if on_gpu else 0.0
            metrics.for_variant(variant.model_name, variant.name).set_pricing(
                on_gpu, (settings.price_per_hour + gpu) / 3600
            )
