"""What the live page's script reads: the JSON documents of ``/ui/api/...``."""

from pydantic import BaseModel

from app.variants.report import ModelReport


class Worker(BaseModel):
    pid: int
    workers: int
    """Worker processes of this ``servometer serve``: the page shows the one that answered it."""


class Sampler(BaseModel):
    samples: int
    """Samples taken since the worker started (one a second)."""
    history_s: int
    """How far back the page's series reach."""
    cpu_seconds: float
    """CPU time the sampling has taken, in all."""
    cpu_share: float | None
    """That time against the worker's whole CPU time since sampling began."""
    documents_cpu_seconds: float
    """CPU time computing the page's documents has taken: what open pages cost, on top of the sampling."""


class Figures(BaseModel):
    """A variant over the last few seconds (``window_s`` of :class:`Overview`): rates and latency quantiles."""

    requests_per_s: float | None
    errors_per_s: float | None
    samples_per_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    queue_p99_s: float | None
    compute_p99_s: float | None
    mean_batch: float | None
    cache_hit_ratio: float | None
    """The model's (the cache is per model)."""
    cost_per_1k: float | None
    queue_depth: float | None
    queue_capacity: float | None
    in_flight: float | None


class Totals(BaseModel):
    """Counters since the worker started, as ``/metrics`` of this worker shows them."""

    requests: dict[str, float]
    """By outcome."""
    inferences: float
    cost_dollars: float
    batches: dict[str, float]
    """By dispatch reason."""
    dropped: dict[str, float]
    cache_lookups: dict[str, float]
    """The model's, by result, every backend together."""


class CheckView(BaseModel):
    alert: str
    """The alert rule this check mirrors."""
    title: str
    subject: str
    """What it is about: the variant, or for drift its input."""
    threshold: float
    above: bool
    """Breached above the threshold (latency, errors, cost, drift), else below (throughput, accuracy, readiness)."""
    from_objective: bool
    """The threshold is the model's objective (model.yaml), not the rule's fixed line."""
    unit: str
    window_s: float
    for_s: float
    value: float | None
    holds: bool
    breached_for_s: float
    firing: bool


class VariantView(BaseModel):
    name: str
    version: int
    default: bool
    state: str
    reason: str
    figures: Figures
    totals: Totals
    checks: list[CheckView]
    live_accuracy: float | None
    live_samples: float | None
    drift: dict[str, float]
    """Population stability index by input (and ``prediction``)."""


class ModelView(BaseModel):
    name: str
    error: str
    """Why the model's folder could not be read; empty when it could."""
    has_report: bool
    """An evaluation set is configured, so a variant report can be measured."""
    variants: list[VariantView]
    checks: list[CheckView]
    """Checks over the whole model (throughput)."""


class GpuView(BaseModel):
    gpu: str
    uuid: str
    utilization: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None
    power_watts: float | None


class Overview(BaseModel):
    worker: Worker
    sampler: Sampler
    sampled_at: float | None
    window_s: float
    models: list[ModelView]
    gpus: list[GpuView]


class ReportView(BaseModel):
    report: ModelReport | None
    """The latest variant report measured for the model's current files; None until one is measured."""


class VariantSeries(BaseModel):
    """One variant's series, a value per sample (``t``: seconds since the epoch); null where there is none."""

    model: str
    variant: str
    pid: int
    """The worker whose samples these are: with several workers, a page polling another one starts afresh."""
    t: list[float]
    series: dict[str, list[float | None]]
    batch_sizes: dict[str, float]
    """Batches dispatched in the whole history by size bucket (upper bound)."""
