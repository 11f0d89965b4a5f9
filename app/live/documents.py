"""The live page's documents, computed from this worker's timeline: the overview (every variant's figures, totals,
checks and readiness, the GPUs, the sampler's own cost) and one variant's series."""

import os
import time

from app.live.variant_checks import model_checks, variant_checks
from app.live.variant_figures import FIGURES_WINDOW_S, GPU_SERIES, HISTORY_S, VariantFigures, number, recent
from app.live.wire import GpuView, ModelView, Overview, Sampler, VariantSeries, VariantView, Worker
from app.repository.registry import ModelEntry, Registry
from app.telemetry.metrics import Metrics
from app.telemetry.objective_checks import HISTORY_NEEDED_S
from app.telemetry.timeline import Frame, Timeline

SAMPLED = (
    "requests", "request_duration", "queue_duration", "compute_duration", "batch_size", "batches", "queue_depth",
    "queue_capacity", "requests_in_flight", "queue_dropped", "inferences", "cost", "cache_lookups", "model_ready",
    "objective_latency", "objective_error_ratio", "objective_cost", "objective_drift", "objective_live_accuracy",
    "objective_throughput", "drift_psi", "live_accuracy", "live_samples", "gpu_utilization", "gpu_memory_used",
    "gpu_memory_total", "gpu_power",
)  # fmt: skip
"""The metric families (:class:`app.telemetry.metrics.Metrics` attributes) the page's timeline samples."""
KEPT_S = int(max(HISTORY_S, HISTORY_NEEDED_S)) + 1
"""Samples kept: the charts' fifteen minutes, and as much as the slowest alert rule needs to fire (a 5-minute
window, then 15 minutes of ``for``), so the page can say what Prometheus would."""


def sampled_timeline(metrics: Metrics) -> Timeline:
    return Timeline((getattr(metrics, attribute) for attribute in SAMPLED), capacity=KEPT_S)


class Documents:
    def __init__(self, registry: Registry, timeline: Timeline, workers: int) -> None:
        self.registry = registry
        self.timeline = timeline
        self.workers = workers
        self.cpu_seconds = 0.0
        """CPU time computing documents has taken (a page open costs this, not the sampling)."""
        self._overview: tuple[int, Overview] | None = None

    def overview(self) -> Overview:
        """Computed once per sample, however many pages ask."""
        if self._overview is None or self._overview[0] != self.timeline.taken:
            started = time.thread_time()
            self._overview = (self.timeline.taken, self._compute_overview())
            self.cpu_seconds += time.thread_time() - started
        return self._overview[1]

    def series(self, model: str, variant: str, since: float | None) -> VariantSeries:
        started = time.thread_time()
        name = self.registry.get(model).resolve(variant).name  # by name or version; unknown ones answer 404
        series = VariantFigures(self.timeline, model, name, {}, recent()).series(since, os.getpid())
        self.cpu_seconds += time.thread_time() - started
        return series

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
                documents_cpu_seconds=self.cpu_seconds,
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
        since_recent = recent()
        figures = [VariantFigures(self.timeline, entry.name, name, frames, since_recent) for name in entry.variants]
        variants = [
            VariantView(
                name=variant.name,
                version=variant.version,
                default=variant.name == entry.manifest.default,
                state=variant.state.value,
                reason=variant.reason,
                figures=shown.figures(),
                totals=shown.totals(),
                checks=variant_checks(shown),
                **shown.monitoring(),
            )
            for variant, shown in zip(entry.variants.values(), figures, strict=True)
        ]
        return ModelView(
            name=entry.name,
            error="",
            has_report=entry.manifest.evaluation is not None,
            variants=variants,
            checks=model_checks(entry.name, figures, lambda keys: figures[0].read(keys, since_recent)),
        )

    def _gpus(self) -> list[GpuView]:
        views = []
        for gpu, uuid in self.timeline.label_sets("servometer_gpu_utilization_ratio"):
            _, values = self.timeline.read([(f"servometer_gpu_{name}", gpu, uuid) for name in GPU_SERIES], recent())
            last = [number(v) for v in values[-1]] if len(values) else [None] * len(GPU_SERIES)
            views.append(GpuView(gpu=gpu, uuid=uuid, utilization=last[0], memory_used_bytes=last[1],
                                 memory_total_bytes=last[2], power_watts=last[3]))  # fmt: skip
        return views
