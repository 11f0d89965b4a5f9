"""The schema of ``models/<name>/model.yaml``, validated with pydantic.

Shapes are the tensor's full shape as sent on the wire, batch dimension first; -1 marks a dynamic dimension.
"""

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from app.protocol.codec import describe_validation_error
from app.schema.steps import StepsSpec, model_tensors
from app.schema.tensors import StrictModel, TensorSpec, relative_file

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MANIFEST_FILE = "model.yaml"
REFERENCE_FILE = "reference-stats.json"
"""Written by the build for models with ``monitoring``: the evaluation set's statistics, which drift compares with."""


class ManifestError(Exception):
    """A model.yaml that cannot be used; the message names the file and the field."""


class VariantSpec(StrictModel):
    name: str = Field(pattern=NAME_PATTERN.pattern)
    """Addressable in place of the version number, e.g. ``fp32``."""
    version: int | None = Field(default=None, ge=1)
    """Numeric version as Triton's clients expect; defaults to the variant's position (1, 2, ...)."""
    file: str
    """Path of the model file, relative to the model's folder."""
    runtime: Literal["onnx", "torchscript"]
    precision: Literal["fp32", "fp16", "int8", "int4"] = "fp32"
    description: str = ""
    batch_dependent: bool = False
    """Its answers move with the other samples in its model call (dynamic int8 scales activations per batch):
    each request then gets a model call of its own and its answers are never cached, so no client can change
    another's answer. ``servometer optimize`` measures it."""

    @field_validator("file")
    @classmethod
    def _inside_model_folder(cls, value: str) -> str:
        return relative_file(value)


class BatchingSpec(StrictModel):
    max_batch_size: int = Field(default=0, ge=0)
    """Largest number of samples in one model call; 0 or 1 turns batching off."""
    max_queue_delay_ms: float = Field(default=0.0, ge=0)
    """Longest the oldest queued request waits for a fuller batch."""
    adaptive_delay: bool = True
    """Dispatch a partial batch before max_queue_delay_ms when waiting cannot fill it: a lone request with nothing
    else queued or computing, or no arrival for a tenth of the delay. Off: the full delay, as Triton waits."""
    preferred_batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    max_queue_size: int = Field(default=1024, ge=1)
    """Requests waiting beyond this are rejected at once with ``overload_status`` and Retry-After."""
    overload_status: Literal[503, 429] = 503
    max_batch_tokens: int = Field(default=0, ge=0)
    """Models with a ``tokenize`` step: the most tokens one model call computes (samples x its longest text,
    padding included). A batch past it is cut into calls of texts of similar length; a text alone is never
    refused for it. 0: no budget, one call per batch."""
    call_cost_tokens: float = Field(default=8.0, ge=0)
    """With ``max_batch_tokens``: what one more model call costs, counted in tokens computed. Calls are cut where
    padding plus this cost per call is least. 8 measured for MiniLM on one CPU core (bench/TEXT_RESULTS.md); an
    accelerator, whose calls cost more to start, wants more."""
    instances: int = Field(default=1, ge=1)
    """Batches of one variant computing at the same time."""
    priority_levels: int = Field(default=1, ge=1)
    """Request parameter ``priority``: 1 is the highest level, 0 means ``default_priority_level``."""
    default_priority_level: int | None = Field(default=None, ge=1)
    """Level of requests that name no priority; the lowest level when unset."""
    max_queue_size_per_level: dict[int, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Per-level queue limits, so one level's traffic cannot fill the whole queue."""
    inline_compute_below_ms: float = Field(default=0.25, ge=0)
    """Model calls measured shorter than this run on the event loop: a thread handoff costs more. 0: never."""
    default_timeout_ms: float = Field(default=0.0, ge=0)
    """Queue timeout for requests without a ``timeout`` parameter; 0 waits as long as it takes."""
    compute_timeout_ms: float = Field(default=0.0, ge=0)
    """A model call running longer fails its requests with 504 at once; 0: no limit. The call itself cannot be
    stopped, so its instance stays busy until it returns (set ``instances`` > 1 to keep serving meanwhile).
    With a limit, no call runs inline on the event loop, where a hang would stall every model."""

    @model_validator(mode="after")
    def _consistent(self) -> "BatchingSpec":
        too_big = [size for size in self.preferred_batch_sizes if size > self.max_batch_size]
        if too_big:
            raise ValueError(f"preferred_batch_sizes {too_big} exceed max_batch_size {self.max_batch_size}")
        levels = range(1, self.priority_levels + 1)
        unknown = [level for level in self.max_queue_size_per_level if level not in levels]
        if unknown or (self.default_priority_level or 1) not in levels:
            raise ValueError(f"priority levels must lie in 1..{self.priority_levels}")
        return self

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    @property
    def default_level(self) -> int:
        return self.default_priority_level or self.priority_levels


class CacheSpec(StrictModel):
    enabled: bool = True
    ttl_s: float = Field(default=300.0, gt=0)


class ObjectivesSpec(StrictModel):
    """Service-level objectives, exported as gauges so alert rules compare against the model's own thresholds."""

    latency_p99_s: float | None = Field(default=None, gt=0)
    error_ratio: float | None = Field(default=None, ge=0, le=1)
    cost_per_1k_inferences: float | None = Field(default=None, ge=0)
    """Dollars per 1,000 inferences."""
    min_throughput: float | None = Field(default=None, ge=0)
    """Inferences per second below which the model is considered starved or broken."""
    max_drift_psi: float | None = Field(default=None, gt=0)
    """Population stability index above which an input or the predictions count as drifted (alerts use 0.25
    without one)."""
    min_live_accuracy: float | None = Field(default=None, ge=0, le=1)
    """Accuracy from feedback (or share judged relevant) below which the model is considered wrong in production."""


class MonitoringSpec(StrictModel):
    """Watching the model's quality in production: input and prediction drift against the reference statistics
    its build stored, and live accuracy from feedback. Needs an ``evaluation`` block."""

    sample_rate: float = Field(default=0.1, gt=0, le=1)
    """Share of requests whose inputs and predictions join the drift window (picked at random)."""
    window: int = Field(default=1000, ge=10)
    """Sampled requests the drift scores are computed over (the most recent ones)."""
    interval_s: float = Field(default=5.0, gt=0)
    """How often drift scores are recomputed, in the background."""
    feedback_ttl_s: float = Field(default=3600.0, gt=0)
    """How long a response id accepts feedback."""
    feedback_window: int = Field(default=500, ge=1)
    """Feedback items live accuracy is computed over (the most recent ones)."""


class EvaluationSpec(StrictModel):
    """How variants are compared: the report's quality figures, ``servometer optimize``'s checks, and the
    ``fastest_within`` routing policy all read it."""

    data: str
    """An ``.npz`` in the model's folder holding the inputs (and, for classifiers, the true labels)."""
    task: Literal["classification", "embedding"]
    output: str
    """The output scored: logits or probabilities for a classifier (top-1 = argmax), the embedding otherwise."""
    labels: str | None = None
    """Classification: the array in ``data`` with the true classes."""
    inputs: dict[str, str] = Field(default_factory=dict)
    """Input name -> array name in ``data``, where they differ."""
    reference: str | None = None
    """The variant the others are compared with; the default variant when unset."""
    calibration: str | None = None
    """An ``.npz`` of inputs for static quantization (``servometer optimize``); never the evaluation data."""
    max_samples: int = Field(default=512, ge=1)
    min_agreement: float = Field(default=0.97, ge=0, le=1)
    """Classification: the share of top-1 answers a variant must share with the reference to be kept."""
    min_cosine: float = Field(default=0.85, ge=-1, le=1)
    """Embedding: the lowest per-sample cosine similarity to the reference a variant may have to be kept."""
    measure: Literal["cosine", "retrieval"] = "cosine"
    """Embedding: what "close to the reference" means for keeping a variant (``servometer optimize``) and for
    ``fastest_within``'s quality loss: ``cosine`` (lowest cosine >= ``min_cosine``; loss 1 - mean cosine) or
    ``retrieval`` (top-5 nearest-neighbour agreement >= ``min_retrieval``; loss 1 - that agreement)."""
    min_retrieval: float = Field(default=0.9, ge=0, le=1)
    """Embedding, ``measure: retrieval``: the lowest top-5 neighbour agreement a variant may have to be kept."""

    @field_validator("data", "calibration")
    @classmethod
    def _inside_model_folder(cls, value: str | None) -> str | None:
        return None if value is None else relative_file(value)

    @model_validator(mode="after")
    def _labels_for_classifiers(self) -> "EvaluationSpec":
        if self.task == "classification" and self.labels is None:
            raise ValueError("a classification evaluation needs 'labels' (the array of true classes in data)")
        return self


class RoutingSpec(StrictModel):
    """Which variant serves requests that name none."""

    policy: Literal["default", "weighted", "shadow", "fastest_within"] = "default"
    weights: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    """weighted: variant -> share of traffic (normalised). Requests with a routing key stick to one variant."""
    candidate: str | None = None
    """shadow: the variant that gets a copy of the traffic; its answers are compared, never returned."""
    shadow_fraction: float = Field(default=1.0, gt=0, le=1)
    """shadow: the share of requests copied to the candidate."""
    tolerance: float = Field(default=0.01, ge=0)
    """fastest_within: the largest quality loss against the reference (accuracy points for classifiers,
    1 - mean cosine for embeddings) the chosen variant may have."""


class ModelManifest(StrictModel):
    name: str = Field(pattern=NAME_PATTERN.pattern)
    description: str = ""
    required: bool = False
    """The server is not ready until every required model's default variant is ready."""
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    variants: list[VariantSpec] = Field(min_length=1)
    default_variant: str | None = None
    """Serves requests that name no version; the first variant when unset."""
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    objectives: ObjectivesSpec = Field(default_factory=ObjectivesSpec)
    evaluation: EvaluationSpec | None = None
    monitoring: MonitoringSpec | None = None
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    steps: StepsSpec = Field(default_factory=StepsSpec)
    """Processing before and after the model: ``inputs`` and ``outputs`` are then what clients send and get, and
    the model file takes and returns what the steps make of them (:attr:`model_inputs`)."""

    @model_validator(mode="after")
    def _consistent(self) -> "ModelManifest":
        for kind, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [tensor.name for tensor in tensors]
            if len(set(names)) != len(names):
                raise ValueError(f"{kind} names must be unique, got {names}")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        versions = self.versions()
        if len(set(versions.values())) != len(versions):
            raise ValueError(f"variant versions must be unique, got {list(versions.values())}")
        if set(names) & {str(version) for version in versions.values()}:
            raise ValueError("a variant name may not equal another variant's version number")
        if self.default_variant is not None and self.default_variant not in names:
            raise ValueError(f"default_variant '{self.default_variant}' is not one of the variants {names}")
        self._check_routing(names)
        self._check_steps()
        for tensor in self.outputs:
            if tensor.value_range is not None or tensor.finite_only:
                raise ValueError(f"output '{tensor.name}': value_range and finite_only apply to inputs only")
        input_names = [tensor.name for tensor in self.inputs]
        for tensor in self.outputs:
            if tensor.same_shape_as is not None:
                raise ValueError(f"output '{tensor.name}': same_shape_as applies to inputs only")
        for tensor in self.inputs:
            if tensor.same_shape_as is not None and tensor.same_shape_as not in input_names:
                raise ValueError(f"input '{tensor.name}': same_shape_as names '{tensor.same_shape_as}', not an input")
            if tensor.value_range is not None and tensor.datatype in ("BYTES", "BOOL"):
                raise ValueError(f"input '{tensor.name}': value_range needs a numeric datatype, not {tensor.datatype}")
        if self.batching.max_batch_size > 1:
            fixed = [t.name for t in self.inputs + self.outputs if t.shape[0] != -1]
            if fixed:
                raise ValueError(f"with batching on, the first dimension must be -1 (batch) for {fixed}")
        return self

    def _check_routing(self, names: list[str]) -> None:
        routing = self.routing
        named = [*routing.weights, *([routing.candidate] if routing.candidate else [])]
        if self.evaluation is not None and self.evaluation.reference is not None:
            named.append(self.evaluation.reference)
        unknown = [name for name in named if name not in names]
        if unknown:
            raise ValueError(f"routing / evaluation name variants {unknown} that are not among {names}")
        if routing.policy == "weighted" and not any(routing.weights.values()):
            raise ValueError("routing policy 'weighted' needs 'weights' with at least one share above 0")
        if routing.policy == "shadow" and routing.candidate in (None, self.default):
            raise ValueError("routing policy 'shadow' needs a 'candidate' other than the default variant")
        if self.monitoring is not None and self.evaluation is None:
            raise ValueError("'monitoring' needs an 'evaluation' block: drift is measured against its data")
        if routing.policy == "fastest_within" and self.evaluation is None:
            raise ValueError("routing policy 'fastest_within' needs an 'evaluation' block to measure quality")

    def _check_steps(self) -> None:
        model_tensors(self.steps, self.inputs, self.outputs)  # raises for a step reading what nothing makes
        texts = {spec.name: spec for spec in self.inputs}
        for step in self.steps.before:
            if step.kind == "tokenize" and step.input in texts and texts[step.input].datatype != "BYTES":
                raise ValueError(f"steps.before: tokenize reads '{step.input}', which must be a BYTES input")
        made = {spec.name for step in (*self.steps.before, *self.steps.after) for spec in step.makes()}
        clash = sorted(made & {spec.name for spec in self.inputs})
        if clash:
            raise ValueError(f"steps make tensors named like inputs clients send: {clash}")

    @property
    def model_inputs(self) -> list[TensorSpec]:
        """What the model file takes: ``inputs``, as the steps before the model turn them."""
        return model_tensors(self.steps, self.inputs, self.outputs)[0]

    @property
    def model_outputs(self) -> list[TensorSpec]:
        """The declared outputs the model file returns itself (the steps make the others)."""
        return model_tensors(self.steps, self.inputs, self.outputs)[1]

    @property
    def step_reads(self) -> list[str]:
        """Outputs of the model file that the steps after it read, beyond :attr:`model_outputs`."""
        return model_tensors(self.steps, self.inputs, self.outputs)[2]

    @property
    def text_inputs(self) -> list[str]:
        """Inputs a tokenize step reads: each element must be UTF-8 text."""
        return [step.input for step in self.steps.before if step.kind == "tokenize"]

    @property
    def reference(self) -> str:
        """The variant others are compared with."""
        return (self.evaluation.reference if self.evaluation else None) or self.default

    def versions(self) -> dict[str, int]:
        """Variant name -> numeric version."""
        return {variant.name: variant.version or index for index, variant in enumerate(self.variants, start=1)}

    @property
    def default(self) -> str:
        return self.default_variant or self.variants[0].name


def load_manifest(folder: Path) -> ModelManifest:
    """Read and validate ``folder/model.yaml``; the folder's name must be the model's name."""
    path = folder / MANIFEST_FILE
    # Named from the repository down: these messages reach clients (readiness, model metadata), which have no
    # business learning where the repository lives on the server.
    shown = f"{folder.name}/{MANIFEST_FILE}"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{shown}: cannot read: {_without_paths(exc, folder)}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{shown}: expected a mapping of settings at the top level")
    try:
        manifest = ModelManifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(f"{shown}: {describe_validation_error(exc)}") from None
    if manifest.name != folder.name:
        raise ManifestError(f"{shown}: name: '{manifest.name}' must equal the folder's name '{folder.name}'")
    return manifest


def _without_paths(exc: Exception, folder: Path) -> str:
    """An OS error's text with the model folder's absolute path cut down to its name."""
    return str(exc).replace(str(folder.parent) + "/", "")
