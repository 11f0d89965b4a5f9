"""What a model and its variants look like to clients, over either transport: metadata, readiness, Triton's
model configuration and statistics, as the protocol's JSON documents (the gRPC servicer turns them into its
messages, field for field)."""

from typing import Any

from app.errors import Unavailable
from app.protocol.datatypes import triton_type
from app.protocol.schemas import ModelMetadata, TensorMetadata
from app.repository.registry import Registry, Variant, VariantState
from app.runtimes.base import BACKENDS, PLATFORMS
from app.schema.tensors import TensorSpec
from app.telemetry.metrics import Metrics

# Only what is implemented: perf_analyzer and clients change behaviour on what is listed here.
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


def model_metadata(registry: Registry, model: str, version: str | None) -> ModelMetadata:
    entry = registry.get(model)
    variant = entry.resolve(version)
    versions = [str(variant.version)] if version else [str(v.version) for v in entry.variants.values()]
    return ModelMetadata(
        name=variant.model_name,
        versions=versions,
        platform=PLATFORMS[variant.spec.runtime],
        inputs=[_tensor(spec) for spec in variant.manifest.inputs],
        outputs=[_tensor(spec) for spec in variant.manifest.outputs],
    )


def check_ready(registry: Registry, model: str, version: str | None) -> None:
    """Raises :class:`Unavailable` naming the reason unless the variant (the default one without ``version``)
    serves."""
    variant = registry.resolve(model, version)
    if variant.state is not VariantState.READY:
        raise Unavailable(f"model '{model}' variant '{variant.name}' is not ready: {variant.not_ready_reason}")


def model_stats(registry: Registry, metrics: Metrics, model: str | None, version: str | None) -> dict[str, Any]:
    """Triton's statistics of every variant, of a model's variants, or of one variant."""
    if model is None:
        variants = list(registry.variants())
    elif version is None:
        variants = list(registry.get(model).variants.values())
    else:
        variants = [registry.resolve(model, version)]
    return {
        "model_stats": [
            metrics.for_variant(v.model_name, v.name).stats.to_triton(v.model_name, str(v.version)) for v in variants
        ]
    }


def repository_index(registry: Registry) -> list[dict[str, Any]]:
    """Every model and variant in the repository with its state (a model whose model.yaml is broken: once)."""
    index: list[dict[str, Any]] = []
    for entry in registry.models():
        if entry.manifest is None:
            index.append({"name": entry.name, "state": "UNAVAILABLE", "reason": entry.error})
            continue
        for variant in entry.variants.values():
            index.append(
                {"name": entry.name, "version": str(variant.version), "state": variant.state.value,
                 "reason": variant.reason}
            )  # fmt: skip
    return index


def _tensor(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(name=spec.name, datatype=spec.datatype, shape=spec.shape)


def triton_config(variant: Variant, cache_on: bool) -> dict[str, Any]:
    """The subset of Triton's ModelConfig that perf_analyzer and tritonclient read.

    Triton's ``dims`` leave out the batch dimension when ``max_batch_size`` > 0.
    """
    manifest = variant.manifest
    batching = manifest.batching
    max_batch = batching.max_batch_size if batching.max_batch_size > 1 else 0

    def tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "data_type": triton_type(s.datatype), "dims": s.shape[1:] if max_batch else s.shape}
            for s in specs
        ]

    config: dict[str, Any] = {
        "name": manifest.name,
        "platform": PLATFORMS[variant.spec.runtime],
        "backend": BACKENDS[variant.spec.runtime],
        "version_policy": {"specific": {"versions": [variant.version]}},
        "max_batch_size": max_batch,
        "input": tensors(manifest.inputs),
        "output": tensors(manifest.outputs),
        "response_cache": {"enable": cache_on and manifest.cache.enabled},
        "parameters": {
            "variant": {"string_value": variant.name},
            "precision": {"string_value": variant.spec.precision},
        },
    }
    if max_batch:
        config["dynamic_batching"] = {
            "preferred_batch_size": batching.preferred_batch_sizes,
            "max_queue_delay_microseconds": int(batching.max_queue_delay_ms * 1000),
        }
    return config
