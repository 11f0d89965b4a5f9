"""Variant reports in the running server: built off the event loop, one build per model at a time, kept by key,
exported as metrics, and read by the ``fastest_within`` routing policy."""

import asyncio
import logging
from pathlib import Path

from app.errors import InvalidRequest
from app.repository.registry import Registry, VariantState
from app.telemetry.metrics import Metrics
from app.variants.report import ModelReport, ReportStore, build_report, file_digests, report_key

log = logging.getLogger(__name__)


class VariantReports:
    def __init__(self, registry: Registry, metrics: Metrics, price_per_hour: float, directory: Path) -> None:
        self.registry = registry
        self.metrics = metrics
        self.price_per_hour = price_per_hour
        self.store = ReportStore(directory)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, model: str) -> ModelReport:
        """The model's current report, measured now if no stored one matches its files."""
        entry = self.registry.get(model)
        manifest = entry.manifest
        if manifest is None or manifest.evaluation is None:
            raise InvalidRequest(
                f"model '{model}' has no 'evaluation' block in its model.yaml: the variant report needs an "
                "evaluation set to measure quality on"
            )
        folder = self.registry.root / model
        ready = [v.name for v in entry.variants.values() if v.state is VariantState.READY]
        if manifest.reference not in ready:
            raise InvalidRequest(f"model '{model}': the reference variant '{manifest.reference}' is not ready")
        async with self._locks.setdefault(model, asyncio.Lock()):
            # The registry hashed every loaded file already; only files it could not load are read here.
            known = {name: variant.digest for name, variant in entry.variants.items() if variant.digest}
            digests = await asyncio.to_thread(file_digests, folder, manifest, known)
            report = self.store.get(model, report_key(folder, manifest, self.price_per_hour, digests))
            if report is None:
                log.info("measuring the variants of '%s' for its report", model)
                report = await asyncio.to_thread(
                    build_report, folder, manifest, self.registry.options, self.price_per_hour, ready, digests
                )
                self.store.put(report)
            for variant in report.variants:
                self.metrics.set_variant_report(
                    report.model,
                    variant.name,
                    {**variant.quality.model_dump(exclude={"samples"}), "quality_loss": variant.quality_loss},
                    {
                        "1": (variant.batch_1.p50_s, variant.batch_1.p99_s),
                        "max": (variant.max_batch.p50_s, variant.max_batch.p99_s),
                    },
                    variant.throughput,
                    variant.cost_per_1k,
                )
        return report

    def latest(self, model: str) -> ModelReport | None:
        return self.store.latest(model)

    def build_in_background(self, models: list[str]) -> None:
        for model in models:
            task = asyncio.get_running_loop().create_task(self._build_quietly(model))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _build_quietly(self, model: str) -> None:
        try:
            await self.get(model)
        except Exception:  # a report is never a reason for serving to stop
            log.exception("the variant report of '%s' could not be built", model)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
