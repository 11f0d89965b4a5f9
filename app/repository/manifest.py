"""The schema of ``models/<name>/model.yaml``, validated with pydantic.

Shapes are the tensor's full shape as sent on the wire, batch dimension first; -1 marks a dynamic dimension.
"""

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.protocol.codec import describe_validation_error
from app.protocol.datatypes import DATATYPES

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MANIFEST_FILE = "model.yaml"

Dim = Annotated[int, Field(ge=-1)]


class ManifestError(Exception):
    """A model.yaml that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str = Field(min_length=1)
    datatype: str
    shape: list[Dim] = Field(min_length=1)
    max_shape: list[Dim] | None = None
    """Upper bounds for dynamic dimensions (-1: unbounded), e.g. a model's longest token sequence."""

    @field_validator("datatype")
    @classmethod
    def _known_datatype(cls, value: str) -> str:
        if value not in DATATYPES:
            raise ValueError(f"unknown datatype '{value}'; expected one of {', '.join(DATATYPES)}")
        return value

    @field_validator("shape")
    @classmethod
    def _no_zero_dims(cls, value: list[int]) -> list[int]:
        if 0 in value:
            raise ValueError("dimensions are positive sizes or -1 (dynamic)")
        return value

    @model_validator(mode="after")
    def _max_shape_fits(self) -> "TensorSpec":
        if self.max_shape is not None and (len(self.max_shape) != len(self.shape) or 0 in self.max_shape):
            raise ValueError(
                f"max_shape {self.max_shape} must have one positive size or -1 per dimension of {self.shape}"
            )
        return self

    def bounds(self) -> list[int]:
        """Per dimension, the largest size allowed (-1: any)."""
        fixed = self.max_shape or [-1] * len(self.shape)
        return [want if want != -1 else limit for want, limit in zip(self.shape, fixed, strict=True)]


class VariantSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN.pattern)
    """Addressable in place of the version number, e.g. ``fp32``."""
    version: int | None = Field(default=None, ge=1)
    """Numeric version as Triton's clients expect; defaults to the variant's position (1, 2, ...)."""
    file: str
    """Path of the model file, relative to the model's folder."""
    runtime: Literal["onnx", "torchscript"]
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    description: str = ""

    @field_validator("file")
    @classmethod
    def _inside_model_folder(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value or "://" in value:
            raise ValueError("must be a relative path inside the model's folder (no '..', no URL)")
        return value


class BatchingSpec(_Strict):
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


class CacheSpec(_Strict):
    enabled: bool = True
    ttl_s: float = Field(default=300.0, gt=0)


class ObjectivesSpec(_Strict):
    """Service-level objectives, exported as gauges so alert rules compare against the model's own thresholds."""

    latency_p99_s: float | None = Field(default=None, gt=0)
    error_ratio: float | None = Field(default=None, ge=0, le=1)
    cost_per_1k_inferences: float | None = Field(default=None, ge=0)
    """Dollars per 1,000 inferences."""
    min_throughput: float | None = Field(default=None, ge=0)
    """Inferences per second below which the model is considered starved or broken."""


class ModelManifest(_Strict):
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
        if self.batching.max_batch_size > 1:
            fixed = [t.name for t in self.inputs + self.outputs if t.shape[0] != -1]
            if fixed:
                raise ValueError(f"with batching on, the first dimension must be -1 (batch) for {fixed}")
        return self

    def versions(self) -> dict[str, int]:
        """Variant name -> numeric version."""
        return {variant.name: variant.version or index for index, variant in enumerate(self.variants, start=1)}

    @property
    def default(self) -> str:
        return self.default_variant or self.variants[0].name


def load_manifest(folder: Path) -> ModelManifest:
    """Read and validate ``folder/model.yaml``; the folder's name must be the model's name."""
    path = folder / MANIFEST_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{path}: expected a mapping of settings at the top level")
    try:
        manifest = ModelManifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(f"{path}: {describe_validation_error(exc)}") from None
    if manifest.name != folder.name:
        raise ManifestError(f"{path}: name: '{manifest.name}' must equal the folder's name '{folder.name}'")
    return manifest
