"""The variant report: for every variant of a model, its quality on the evaluation set, its latency at batch 1
and at the largest batch, throughput, cost per 1,000 inferences, file size and memory, measured by running it.

Built on demand (``servometer report``, ``GET /v2/models/{model}/variants``) or at load time, and kept by a key
over the variants' file digests, the evaluation data and the price: a rebuilt model gets a new report, an
unchanged one reuses the stored one.
"""

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from app.evaluation.quality import EvaluationSet, Quality, load_evaluation, measure
from app.repository.registry import file_digest
from app.runtimes.base import Runtime, RuntimeOptions
from app.runtimes.loader import load_variant_runtime
from app.schema.manifest import ModelManifest, VariantSpec
from app.variants.memory_probe import variant_memory

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
BATCH_1_CALLS = 50
MAX_BATCH_CALLS = 10
TIME_BUDGET_S = 3.0
"""Timing calls stop early once a variant has used this much time at one batch size (at least 5 calls)."""


class Latency(BaseModel):
    batch: int
    calls: int
    """Model calls timed for these figures."""
    p50_s: float
    p99_s: float


class VariantReport(BaseModel):
    name: str
    version: int
    runtime: str
    precision: str
    file: str
    digest: str
    file_bytes: int
    memory_bytes: int | None
    """Resident memory a fresh process grows by to load the variant and run one largest batch (Linux only)."""
    quality: Quality
    quality_loss: float
    """Against the reference: accuracy points lost (classifiers) or 1 - mean cosine (embeddings)."""
    batch_1: Latency
    max_batch: Latency
    throughput: float
    """Samples per second at the largest batch, one call at a time."""
    cost_per_1k: float | None
    """Dollars per 1,000 inferences at the largest batch, from the configured price per hour."""


class ModelReport(BaseModel):
    format: int = FORMAT_VERSION
    key: str
    model: str
    task: str
    reference: str
    evaluation_samples: int
    price_per_hour: float
    created_at: float
    variants: list[VariantReport]

    def fastest_within(self, tolerance: float, candidates: set[str] | None = None) -> str:
        """The variant with the lowest batch-1 median latency whose quality loss is within ``tolerance``."""
        eligible = [
            v for v in self.variants if v.quality_loss <= tolerance and (candidates is None or v.name in candidates)
        ]
        if not eligible:
            return self.reference
        return min(eligible, key=lambda v: (v.batch_1.p50_s, v.name)).name

    def samples_per_dollar(self, variant: VariantReport) -> float:
        """Samples a dollar buys at the variant's largest batch (samples per second without a price)."""
        return variant.throughput * 3600 / self.price_per_hour if self.price_per_hour else variant.throughput

    def pareto_front(self) -> list[str]:
        """The variants no other beats on both quality kept (1 - quality loss) and samples per dollar (samples per
        second where no price is set): the only ones worth choosing between."""
        points = {v.name: (-v.quality_loss, self.samples_per_dollar(v)) for v in self.variants}
        return [
            name
            for name, (quality, speed) in points.items()
            if not any(
                other != name and q >= quality and s >= speed and (q, s) != (quality, speed)
                for other, (q, s) in points.items()
            )
        ]

    def table(self) -> str:
        """A Markdown table of the figures, one row per variant."""
        classification = self.task == "classification"
        quality_columns = (
            ("accuracy", "macro-F1") if classification
            else ("cosine mean", "cosine min", "top-5 retrieval agreement", "similarity rank correlation")
        )  # fmt: skip
        front = set(self.pareto_front())
        lines = [
            f"| variant | precision | {' | '.join(quality_columns)} | max abs error | p50 / p99 ms, batch 1 | "
            f"p50 / p99 ms, batch {self.variants[0].max_batch.batch} | samples/s | $ per 1k | MB on disk | MB memory "
            "| Pareto frontier |",
            "|---|---|" + "---:|" * (len(quality_columns) + 7) + "---|",
        ]
        for v in self.variants:
            q = v.quality
            figures = (
                (q.accuracy, q.macro_f1) if classification
                else (q.cosine_mean, q.cosine_min, q.retrieval_top5, q.similarity_spearman)
            )  # fmt: skip
            shown = " | ".join("" if figure is None else f"{figure:.4f}" for figure in figures)
            memory = "" if v.memory_bytes is None else f"{v.memory_bytes / 1e6:.1f}"
            cost = "" if v.cost_per_1k is None else f"{v.cost_per_1k:.2e}"
            lines.append(
                f"| {v.name}{' (reference)' if v.name == self.reference else ''} | {v.precision} | {shown} | "
                f"{q.max_abs_error:.2e} | {v.batch_1.p50_s * 1e3:.3f} / {v.batch_1.p99_s * 1e3:.3f} | "
                f"{v.max_batch.p50_s * 1e3:.2f} / {v.max_batch.p99_s * 1e3:.2f} | {v.throughput:,.0f} | {cost} | "
                f"{v.file_bytes / 1e6:.2f} | {memory} | {'yes' if v.name in front else ''} |"
            )
        return "\n".join(lines)


def file_digests(folder: Path, manifest: ModelManifest, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each variant's file digest; ``known`` ones (the registry hashed them at load) are not read again."""
    known = known or {}
    return {v.name: known.get(v.name) or _digest_or_missing(folder / v.file) for v in manifest.variants}


def report_key(
    folder: Path, manifest: ModelManifest, price_per_hour: float, digests: Mapping[str, str] | None = None
) -> str:
    """Changes whenever a figure could: a variant file, the evaluation data, the price, or this format."""
    assert manifest.evaluation is not None
    digests = digests or file_digests(folder, manifest)
    parts = [f"v{FORMAT_VERSION}", manifest.name, manifest.reference, str(price_per_hour), manifest.evaluation.measure]
    parts += [f"{name}={digest}" for name, digest in digests.items()]
    parts.append(_digest_or_missing(folder / manifest.evaluation.data))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _digest_or_missing(path: Path) -> str:
    return file_digest(path) if path.is_file() else "missing"


def build_report(
    folder: Path,
    manifest: ModelManifest,
    options: RuntimeOptions,
    price_per_hour: float,
    variants: list[str],
    digests: Mapping[str, str] | None = None,
) -> ModelReport:
    """Measure ``variants`` (names, the reference first among them) by loading and running each one."""
    if manifest.evaluation is None:
        raise ValueError(f"model '{manifest.name}' has no 'evaluation' block in its model.yaml")
    digests = digests or file_digests(folder, manifest)
    evaluation = load_evaluation(folder, manifest)
    specs = {v.name: v for v in manifest.variants}
    ordered = [manifest.reference, *(name for name in variants if name != manifest.reference)]
    reference_output: np.ndarray | None = None
    reference_quality: Quality | None = None
    reports = []
    versions = manifest.versions()
    for name in ordered:
        spec = specs[name]
        figures = _measure_variant(folder, manifest, spec, options, evaluation)
        output, latency_1, latency_max, memory = figures
        if reference_output is None:
            reference_output = output
        quality = measure(manifest.evaluation, output, reference_output, evaluation.labels)
        reference_quality = reference_quality or quality
        max_batch = latency_max.batch
        per_sample_s = latency_max.p50_s / max_batch
        reports.append(
            VariantReport(
                name=name,
                version=versions[name],
                runtime=spec.runtime,
                precision=spec.precision,
                file=spec.file,
                digest=digests[name],
                file_bytes=_size(folder / spec.file),
                memory_bytes=memory,
                quality=quality,
                quality_loss=quality.loss_against(reference_quality, manifest.evaluation),
                batch_1=latency_1,
                max_batch=latency_max,
                throughput=1.0 / per_sample_s if per_sample_s > 0 else 0.0,
                cost_per_1k=price_per_hour / 3600 * per_sample_s * 1000 if price_per_hour else None,
            )
        )
    return ModelReport(
        key=report_key(folder, manifest, price_per_hour, digests),
        model=manifest.name,
        task=manifest.evaluation.task,
        reference=manifest.reference,
        evaluation_samples=evaluation.samples,
        price_per_hour=price_per_hour,
        created_at=time.time(),
        variants=reports,
    )


def _measure_variant(
    folder: Path, manifest: ModelManifest, spec: VariantSpec, options: RuntimeOptions, evaluation: EvaluationSet
) -> tuple[np.ndarray, Latency, Latency, int | None]:
    assert manifest.evaluation is not None
    output_name = manifest.evaluation.output
    runtime = load_variant_runtime(spec.runtime, folder / spec.file, options, manifest)
    try:
        largest = max(1, manifest.batching.max_batch_size)
        outputs = [
            runtime.infer({k: v[i : i + largest] for k, v in evaluation.inputs.items()}, [output_name])[output_name]
            for i in range(0, evaluation.samples, largest)
        ]
        latency_1 = _time_calls(runtime, _batch_of(evaluation, 1), output_name, BATCH_1_CALLS)
        latency_max = _time_calls(runtime, _batch_of(evaluation, largest), output_name, MAX_BATCH_CALLS)
    finally:
        runtime.close()
    return np.concatenate(outputs), latency_1, latency_max, variant_memory(folder, spec.name)


def _batch_of(evaluation: EvaluationSet, size: int) -> dict[str, np.ndarray]:
    """``size`` samples of the evaluation set, repeating it if it is smaller."""
    picks = np.arange(size) % evaluation.samples
    return {name: array[picks] for name, array in evaluation.inputs.items()}


def _time_calls(runtime: Runtime, inputs: dict[str, np.ndarray], output: str, calls: int) -> Latency:
    runtime.infer(inputs, [output])  # warm-up: first calls allocate
    durations: list[float] = []
    started = time.perf_counter()
    while len(durations) < calls and (len(durations) < 5 or time.perf_counter() - started < TIME_BUDGET_S):
        begin = time.perf_counter()
        runtime.infer(inputs, [output])
        durations.append(time.perf_counter() - begin)
    ordered = sorted(durations)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    batch = len(next(iter(inputs.values())))
    return Latency(batch=batch, calls=len(durations), p50_s=statistics.median(durations), p99_s=p99)


def _size(path: Path) -> int:
    """The file and its external-data files (weights the exporter kept beside it)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


class ReportStore:
    """Reports by key: in memory, and as JSON files in ``directory`` when it is writable (kept across restarts)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._reports: dict[str, ModelReport] = {}

    def get(self, model: str, key: str) -> ModelReport | None:
        cached = self._reports.get(model)
        if cached is not None and cached.key == key:
            return cached
        path = self._path(model, key)
        if path is None or not path.is_file():
            return None
        try:
            report = ModelReport.model_validate_json(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignoring stored report %s: %s", path, exc)
            return None
        self._reports[model] = report
        return report

    def put(self, report: ModelReport) -> None:
        self._reports[report.model] = report
        path = self._path(report.model, report.key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report.model_dump(), indent=1))
        except OSError as exc:  # a read-only repository: the report lives in memory only
            log.warning("cannot store the variant report in %s: %s", path.parent, exc)

    def latest(self, model: str) -> ModelReport | None:
        """The last report built or read for ``model``, whatever its key (for routing while a new one builds)."""
        return self._reports.get(model)

    def _path(self, model: str, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{model}-{key}.json"
