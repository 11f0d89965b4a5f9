"""``servometer optimize``: produce a model's optimized variants, check each against the reference, and list the
ones that pass in its ``model.yaml``.

Kinds, from an ONNX source: ``fp32-opt`` (ONNX Runtime's extended graph optimizations, saved), ``int8-dynamic``
(weights int8, activation scales computed per batch), ``int8-static`` (QDQ, activation scales calibrated once on
the model's calibration data), ``fp16`` (float16 inside, float32 at the inputs and outputs: kept only where the
runtime can run it), ``int4`` (MatMul weights in 4 bits, block-wise; activations float). From a TorchScript
source: ``torchscript`` (frozen: weights inlined as constants).

Every produced file is run on the evaluation set and compared with the reference variant's answers (top-1
agreement for classifiers, per-sample cosine for embeddings, thresholds from ``evaluation`` in ``model.yaml``);
a variant that fails, or that the runtime cannot load, is reported, its file removed, and its entry left out.
"""

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import yaml

from app.evaluation.quality import (
    EVALUATION_BATCH,
    EvaluationSet,
    Quality,
    depends_on_companions,
    evaluated_output,
    load_calibration,
    load_evaluation,
    measure,
)
from app.monitoring.reference import write_reference
from app.runtimes.base import RuntimeOptions
from app.schema.manifest import MANIFEST_FILE, REFERENCE_FILE, EvaluationSpec, ModelManifest, load_manifest
from app.variants.encoder_int8 import (
    RECIPES,
    Trial,
    is_encoder,
    quantize,
    timing_batches,
    variant_samples_per_second,
)

Kind = Literal["fp32-opt", "int8-dynamic", "int8-static", "fp16", "int4", "torchscript"]
KINDS: tuple[Kind, ...] = get_args(Kind)
ONNX_KINDS: tuple[Kind, ...] = ("fp32-opt", "int8-dynamic", "int8-static", "fp16", "int4")
PRECISION: dict[Kind, str] = {
    "fp32-opt": "fp32", "int8-dynamic": "int8", "int8-static": "int8", "fp16": "fp16", "int4": "int4",
    "torchscript": "fp32",
}  # fmt: skip
DESCRIPTION: dict[Kind, str] = {
    "fp32-opt": "servometer optimize: ONNX Runtime extended graph optimizations, saved",
    "int8-dynamic": "servometer optimize: int8 weights, activation scales computed per batch",
    "int8-static": "servometer optimize: int8 QDQ, activation scales calibrated on the calibration data",
    "fp16": "servometer optimize: float16 inside, float32 inputs and outputs",
    "int4": "servometer optimize: MatMul weights 4-bit, block-wise (blocks of 32), activations float",
    "torchscript": "servometer optimize: TorchScript frozen (weights and attributes inlined as constants)",
}
DEFAULT_OPTIONS = RuntimeOptions()


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    name: str
    file: str
    kept: bool
    reason: str
    """Why it was left out, or empty."""
    quality: Quality | None
    batch_dependent: bool = False
    """Its answers move with their batch companions (measured): served alone, never cached."""
    trials: tuple[Trial, ...] = ()
    """int8-static of a transformer encoder: every recipe tried, with its figures (the kept file is the winner's)."""


def optimize(
    folder: Path,
    kinds: Mapping[Kind, str] | None = None,
    source: Path | None = None,
    options: RuntimeOptions = DEFAULT_OPTIONS,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Outcome]:
    """Produce ``kinds`` (kind -> variant name; default: every kind that fits the source) from ``source`` (default:
    the reference variant's file), check them, and update ``model.yaml``. Returns what happened to each kind."""
    manifest = load_manifest(folder)
    reference = next(v for v in manifest.variants if v.name == manifest.reference)
    source = source or folder / reference.file
    runtime_of_source = "torchscript" if source.suffix in {".pt", ".pth"} else "onnx"
    if kinds is None:
        defaults: tuple[Kind, ...] = ONNX_KINDS if runtime_of_source == "onnx" else ("torchscript",)
        kinds = {kind: kind for kind in defaults}
    wrong = [kind for kind in kinds if (kind == "torchscript") != (runtime_of_source == "torchscript")]
    if wrong:
        raise ValueError(f"kinds {wrong} cannot be made from a {runtime_of_source} source ({source.name})")
    evaluation = load_evaluation(folder, manifest)
    progress(f"reference: {reference.name} ({reference.file}) on {evaluation.samples} evaluation samples")
    expected = evaluated_output(manifest, reference.runtime, folder / reference.file, evaluation, options)
    outcomes = []
    for index, (kind, name) in enumerate(kinds.items(), start=1):
        progress(f"[{index}/{len(kinds)}] {kind} -> variant '{name}'")
        outcome = _produce(folder, manifest, kind, name, source, evaluation, expected, options)
        for trial in outcome.trials:
            figures = trial.note or (
                f"cosine mean {trial.cosine_mean:.4f} min {trial.cosine_min:.4f}, {trial.samples_per_s:.1f} samples/s"
            )
            progress(f"    recipe {trial.recipe:<14} {figures}{'' if trial.passed else ' (fails the check)'}")
        progress(f"    {'kept' if outcome.kept else 'left out'}{': ' + outcome.reason if outcome.reason else ''}")
        outcomes.append(outcome)
    write_variants(folder / MANIFEST_FILE, outcomes)
    progress(f"reference statistics of the inputs and predictions -> {REFERENCE_FILE}")
    write_reference(folder, manifest, options)
    return outcomes


def _produce(
    folder: Path,
    manifest: ModelManifest,
    kind: Kind,
    name: str,
    source: Path,
    evaluation: EvaluationSet,
    expected: np.ndarray,
    options: RuntimeOptions,
) -> Outcome:
    target = folder / (f"model.{name}.pt" if kind == "torchscript" else f"model.{name}.onnx")
    runtime: Literal["onnx", "torchscript"] = "torchscript" if kind == "torchscript" else "onnx"
    assert manifest.evaluation is not None
    trials: tuple[Trial, ...] = ()
    with _staging(target) as staged:
        try:
            if kind == "int8-static" and _encoder(source):
                trials = _encoder_int8(source, staged, folder, manifest, evaluation, expected, options)
            else:
                _MAKERS[kind](source, staged, folder, manifest)
            produced = evaluated_output(manifest, runtime, staged, evaluation, options)
            dependent = depends_on_companions(manifest, runtime, staged, evaluation, options, produced)
        except Exception as exc:  # a kind the tools or the runtime cannot do here: reported, left out
            return Outcome(kind, name, target.name, False, f"not supported here: {_first_line(exc)}", None)
        quality = measure(manifest.evaluation, produced, expected, evaluation.labels)
        if not quality.passes(manifest.evaluation):
            reason = f"too far from the reference: {_summary(quality)}"
            return Outcome(kind, name, target.name, False, reason, quality, trials=trials)
        staged.replace(target)
    return Outcome(kind, name, target.name, True, "", quality, dependent, trials)


def _encoder(source: Path) -> bool:
    import onnx

    return source.suffix == ".onnx" and is_encoder(onnx.load(str(source), load_external_data=False))


def _encoder_int8(
    source: Path,
    staged: Path,
    folder: Path,
    manifest: ModelManifest,
    evaluation: EvaluationSet,
    expected: np.ndarray,
    options: RuntimeOptions,
) -> tuple[Trial, ...]:
    """Every recipe of :mod:`app.variants.encoder_int8`, checked and timed; the winner's file left at ``staged``."""
    spec = manifest.evaluation
    assert spec is not None
    calibration = load_calibration(folder, manifest)
    timed = timing_batches(evaluation.inputs, EVALUATION_BATCH)
    trials, best = [], None
    for recipe in RECIPES:
        candidate = staged.with_name(f".{recipe}{staged.name}")
        try:
            quantize(source, candidate, recipe, calibration)
            quality = measure(spec, evaluated_output(manifest, "onnx", candidate, evaluation, options), expected, None)
            speed = variant_samples_per_second(candidate, manifest, options, timed)
        except Exception as exc:  # a recipe the tools cannot apply to this graph: reported, not chosen
            candidate.unlink(missing_ok=True)
            trials.append(Trial(recipe, None, None, None, False, _first_line(exc)))
            continue
        passed = quality.passes(spec)
        trials.append(Trial(recipe, quality.cosine_mean, quality.cosine_min, speed, passed))
        rank = (passed, _kept_share(quality, spec), speed)
        if best is None or rank > best[0]:
            if best is not None:
                best[1].unlink(missing_ok=True)
            best = (rank, candidate, len(trials) - 1)
        else:
            candidate.unlink(missing_ok=True)
    if best is None:
        raise RuntimeError("no int8 recipe could be applied: " + "; ".join(t.note for t in trials))
    best[1].replace(staged)
    trials[best[2]] = dataclasses.replace(trials[best[2]], kept=True)
    return tuple(trials)


def _kept_share(quality: Quality, spec: EvaluationSpec) -> float:
    """How much of the reference's answers a variant keeps, on the measure the model names (higher is better)."""
    if spec.task == "classification":
        return quality.agreement or 0.0
    kept = quality.retrieval_top5 if spec.measure == "retrieval" else quality.cosine_mean
    return kept if kept is not None else 0.0


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A file beside ``target`` to build into; removed unless it was moved into place."""
    staged = target.with_name(f".{target.stem}.staging{target.suffix}")
    try:
        yield staged
    finally:
        staged.unlink(missing_ok=True)


def _optimized(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _dynamic_int8(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, weight_type=QuantType.QInt8)


def _static_int8(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = iter(load_calibration(folder, manifest))

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    quantize_static(
        source, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def _fp16(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))


INT4_BLOCK = 32
"""Weights per 4-bit block (each with its own scale): smaller blocks keep more of the weights' detail."""


def _int4_weights(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    """Weight-only: the MatMuls' constant weights in 4 bits (onnxruntime's MatMulNBits), activations in float, so
    answers do not depend on batch companions. A graph with no MatMul to quantize is refused."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=4, block_size=INT4_BLOCK, is_symmetric=True)
    quantizer.process()
    if not any(node.op_type == "MatMulNBits" for node in quantizer.model.model.graph.node):
        raise ValueError("no MatMul with constant weights to quantize to 4 bits")
    quantizer.model.save_model_to_file(str(target))


def _frozen_torchscript(source: Path, target: Path, folder: Path, manifest: ModelManifest) -> None:
    import torch

    # Frozen only: optimize_for_inference's rewrites did not load back with torch.jit.load (torch 2.13).
    module = torch.jit.load(str(source), map_location="cpu").eval()  # type: ignore[no-untyped-call]
    torch.jit.freeze(module).save(str(target))


_MAKERS: dict[Kind, Callable[[Path, Path, Path, ModelManifest], None]] = {
    "fp32-opt": _optimized,
    "int8-dynamic": _dynamic_int8,
    "int8-static": _static_int8,
    "fp16": _fp16,
    "int4": _int4_weights,
    "torchscript": _frozen_torchscript,
}


def write_variants(path: Path, outcomes: list[Outcome]) -> None:
    """Add or update the kept variants' entries in ``model.yaml`` and drop the left-out ones, keeping the file's
    comments and layout (a re-run with the same result leaves it byte for byte unchanged)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    document: Any = yaml.load(path)
    variants = document["variants"]
    dropped = {outcome.name for outcome in outcomes if not outcome.kept}
    for entry in [v for v in variants if v["name"] in dropped]:
        variants.remove(entry)
    versions = [v.get("version") or i for i, v in enumerate(variants, start=1)]
    for outcome in (o for o in outcomes if o.kept):
        existing = next((v for v in variants if v["name"] == outcome.name), None)
        entry = existing if existing is not None else CommentedMap()
        if existing is None:
            entry["name"] = outcome.name
            entry["version"] = max(versions, default=0) + 1
            versions.append(entry["version"])
            variants.append(entry)
        entry["file"] = outcome.file
        entry["runtime"] = "torchscript" if outcome.kind == "torchscript" else "onnx"
        entry["precision"] = PRECISION[outcome.kind]
        kept_recipe = next((t.recipe for t in outcome.trials if t.kept), "")
        entry["description"] = DESCRIPTION[outcome.kind] + (f"; recipe {kept_recipe}" if kept_recipe else "")
        if outcome.batch_dependent:
            entry["batch_dependent"] = True
        elif "batch_dependent" in entry:
            del entry["batch_dependent"]
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".yaml", delete=False) as staged:
        yaml.dump(document, staged)
    _replace_if_valid(Path(staged.name), path)


def _replace_if_valid(staged: Path, path: Path) -> None:
    """Move the rewritten manifest into place only if it still validates."""
    try:
        ModelManifest.model_validate(yaml.safe_load(staged.read_text()))
        # A temporary file is private (0600): the manifest keeps its own mode, or a server running as another user
        # (the container's) could no longer read it.
        staged.chmod(path.stat().st_mode & 0o7777)
        staged.replace(path)
    finally:
        staged.unlink(missing_ok=True)


def _summary(quality: Quality) -> str:
    if quality.agreement is not None:
        return f"top-1 agreement {quality.agreement:.4f}, max |error| {quality.max_abs_error:.3g}"
    retrieval = "" if quality.retrieval_top5 is None else f", top-5 retrieval agreement {quality.retrieval_top5:.4f}"
    return f"cosine min {quality.cosine_min:.4f} mean {quality.cosine_mean:.4f}{retrieval}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
