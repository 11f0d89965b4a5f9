"""Static INT8 for transformer encoders (BERT-like: LayerNorm, MatMul, GELU), where plain calibration loses the
answers: MiniLM's embeddings fell to cosine 0.93 mean / 0.85 min to FP32.

What costs the quality, measured on MiniLM: the FFN's second MatMul. Its input, the GELU output, carries massive
activations on the [CLS] token in one or two channels per layer (up to 25 against a 99.99th percentile of 4), so one
static scale for the whole tensor leaves every other token a few levels. Quantizing only that MatMul costs 0.06 of
mean cosine; every other MatMul together, 0.009. The recipes here, tried in this order:

- ``minmax``: every weight MatMul, QDQ, weights per channel, activation ranges from MinMax calibration;
- ``ffn-out-float``: the same with the FFN's second MatMul left in float (quality back, a third of the speed-up gone);
- ``ffn-split``: the FFN split by channel at build time: the ``OUTLIER_CHANNELS`` GELU channels with the largest
  calibration maxima go through a small float path (their FF1 columns, GELU, FF2 rows), the rest through INT8; and
  SmoothQuant on the LayerNorm outputs that feed MatMuls (a per-channel Mul on that branch, the inverse folded into
  the weights), which evens their channels out. Scales stay fixed: a sample's answer never depends on its batch.

Every recipe's file is checked like any variant (quality against the reference) and timed; the best quality among
those that pass wins (ties to the faster). All three reported, so the choice can be read and repeated.
"""

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.runtimes.base import RuntimeOptions
from app.runtimes.loader import load_variant_runtime
from app.schema.manifest import ModelManifest

OUTLIER_CHANNELS = 64
SMOOTH_ALPHA = 0.5
RECIPES = ("minmax", "ffn-out-float", "ffn-split")


@dataclass(frozen=True)
class Trial:
    recipe: str
    cosine_mean: float | None
    cosine_min: float | None
    samples_per_s: float | None
    passed: bool
    note: str = ""
    """Why the recipe could not be applied, or empty."""
    kept: bool = False
    """The winner: its file is the variant's."""


def is_encoder(model: Any) -> bool:
    """A graph with LayerNorm, GELU and FFN MatMuls (an expansion and its projection back)."""
    ops = {node.op_type for node in model.graph.node}
    return {"LayerNormalization", "Gelu", "MatMul"} <= ops and bool(_ffns(model))


def _initializers(model: Any) -> dict[str, Any]:
    return {tensor.name: tensor for tensor in model.graph.initializer}


def _ffns(model: Any) -> list[tuple[Any, Any, Any, Any]]:
    """Each FFN as (first MatMul, bias Add, GELU, second MatMul)."""
    initializers = _initializers(model)
    producer = {output: node for node in model.graph.node for output in node.output}
    found = []
    for node in model.graph.node:
        gelu = producer.get(node.input[0]) if node.op_type == "MatMul" and node.input[1] in initializers else None
        add = producer.get(gelu.input[0]) if gelu is not None and gelu.op_type == "Gelu" else None
        first = producer.get(add.input[0]) if add is not None and add.op_type == "Add" else None
        if first is not None and first.op_type == "MatMul" and first.input[1] in initializers:
            found.append((first, add, gelu, node))
    return found


def _maxima(model: Any, tensors: list[str], batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Per-channel max |value| of ``tensors`` over the calibration batches' real tokens (padding left out)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    maxima: list[np.ndarray] = []
    for feed in batches:
        real = feed["attention_mask"].astype(bool)
        for index, values in enumerate(session.run(tensors, feed)):
            found = np.abs(values[real]).max(axis=0)
            if index == len(maxima):
                maxima.append(found)
            else:
                maxima[index] = np.maximum(maxima[index], found)
    return maxima


def split_ffns(model: Any, batches: list[dict[str, np.ndarray]], channels: int) -> list[str]:
    """Split every FFN so its ``channels`` largest GELU channels run in a float path of their own; returns the
    names of the float paths' second MatMuls (to keep out of quantization)."""
    from onnx import helper, numpy_helper

    graph, initializers = model.graph, _initializers(model)
    ffns = _ffns(model)
    maxima = _maxima(model, [second.input[0] for *_, second in ffns], batches)
    kept_float = []
    for (first, add, gelu, second), maximum in zip(ffns, maxima, strict=True):
        bias_name = next(name for name in add.input if name in initializers)
        weights_in, bias, weights_out = (
            numpy_helper.to_array(initializers[name]) for name in (first.input[1], bias_name, second.input[1])
        )
        outliers = np.sort(np.argsort(-maximum)[:channels])
        paths = {"int8": np.setdiff1d(np.arange(len(maximum)), outliers), "float": outliers}
        prefix, nodes = second.name, []
        for path, columns in paths.items():
            for part, values in (("w1", weights_in[:, columns]), ("b1", bias[columns]), ("w2", weights_out[columns])):
                graph.initializer.append(
                    numpy_helper.from_array(np.ascontiguousarray(values, np.float32), f"{prefix}_{path}_{part}")
                )
            name = f"{prefix}_{path}"
            nodes += [
                helper.make_node("MatMul", [first.input[0], f"{name}_w1"], [f"{name}_h"], name=f"{name}_ff1"),
                helper.make_node("Add", [f"{name}_h", f"{name}_b1"], [f"{name}_hb"], name=f"{name}_bias"),
                helper.make_node("Gelu", [f"{name}_hb"], [f"{name}_g"], name=f"{name}_gelu"),
                helper.make_node("MatMul", [f"{name}_g", f"{name}_w2"], [f"{name}_y"], name=f"{name}_ff2"),
            ]
        nodes.append(helper.make_node("Add", [f"{prefix}_int8_y", f"{prefix}_float_y"], [second.output[0]]))
        kept_float.append(f"{prefix}_float_ff2")
        position = list(graph.node).index(first)
        for old in (first, add, gelu, second):
            graph.node.remove(old)
        for offset, node in enumerate(nodes):
            graph.node.insert(position + offset, node)
    _drop_unused(model)
    return kept_float


def smooth_layernorm_outputs(model: Any, batches: list[dict[str, np.ndarray]], alpha: float) -> None:
    """SmoothQuant where a LayerNorm output feeds weight MatMuls: x·W = (x/s)·(s W), with s from the activation's
    and the weights' per-channel maxima. The division is a Mul on the MatMul branch only (the residual keeps x)."""
    from onnx import helper, numpy_helper

    graph, initializers = model.graph, _initializers(model)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    targets = []
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            matmuls = [
                c for c in consumers.get(node.output[0], []) if c.op_type == "MatMul" and c.input[1] in initializers
            ]
            if matmuls:
                targets.append((node.output[0], matmuls))
    maxima = _maxima(model, [name for name, _ in targets], batches)
    for (name, matmuls), activation in zip(targets, maxima, strict=True):
        weights = [numpy_helper.to_array(initializers[m.input[1]]) for m in matmuls]
        weight = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        scale = (np.maximum(activation, 1e-5) ** alpha / np.maximum(weight, 1e-5) ** (1 - alpha)).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(1.0 / scale, f"{name}_smooth"))
        position = min(list(graph.node).index(m) for m in matmuls)
        graph.node.insert(position, helper.make_node("Mul", [name, f"{name}_smooth"], [f"{name}_smoothed"]))
        for matmul, values in zip(matmuls, weights, strict=True):
            initializers[matmul.input[1]].CopyFrom(numpy_helper.from_array(values * scale[:, None], matmul.input[1]))
            matmul.input[0] = f"{name}_smoothed"


def _drop_unused(model: Any) -> None:
    used = {name for node in model.graph.node for name in node.input}
    kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def without_padding(batches: list[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Calibration batches cut to their longest real text: padded positions would widen the activation ranges
    with values no answer depends on."""
    for batch in batches:
        length = max(1, int(batch["attention_mask"].sum(axis=1).max()))
        yield {name: values[:, :length] for name, values in batch.items()}


def timing_batches(inputs: Mapping[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    """The evaluation inputs in batches of similar lengths (by attention mask), each cut to its longest text: as
    the batcher forms text batches."""
    order = np.argsort(inputs["attention_mask"].sum(axis=1), kind="stable")
    batches = [
        {name: values[order[i : i + size]] for name, values in inputs.items()} for i in range(0, len(order), size)
    ]
    return list(without_padding(batches))


def quantize(source: Path, target: Path, recipe: str, batches: list[dict[str, np.ndarray]]) -> None:
    """``source`` quantized to static INT8 by ``recipe`` (one of :data:`RECIPES`) into ``target``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    calibration = list(without_padding(batches))
    model = onnx.load(str(source))
    excluded: list[str] = []
    if recipe == "ffn-out-float":
        excluded = [second.name for *_, second in _ffns(model)]
    elif recipe == "ffn-split":
        excluded = split_ffns(model, calibration, OUTLIER_CHANNELS)
        smooth_layernorm_outputs(model, calibration, SMOOTH_ALPHA)
    feeds = iter(calibration)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        onnx.save(model, str(prepared))
        quantize_static(
            prepared, target, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=excluded, extra_options={"MatMulConstBOnly": True},
        )  # fmt: skip


def variant_samples_per_second(
    path: Path, manifest: ModelManifest, options: RuntimeOptions, batches: list[dict[str, np.ndarray]]
) -> float:
    """Samples/s of the ONNX file at ``path``, loaded as the server loads variants, computing the model's evaluated
    output over ``batches``."""
    assert manifest.evaluation is not None
    output = manifest.evaluation.output
    runtime = load_variant_runtime("onnx", path, options, manifest)
    try:
        return samples_per_second(lambda batch: runtime.infer(batch, [output]), batches)
    finally:
        runtime.close()


def samples_per_second(run: Callable[[dict[str, np.ndarray]], object], batches: list[dict[str, np.ndarray]]) -> float:
    """Samples/s of ``run`` over ``batches`` (the evaluation set, as the batcher would send it), for 3 s at least."""
    run(batches[0])
    samples, started = 0, time.perf_counter()
    while time.perf_counter() - started < 3.0:
        for batch in batches:
            run(batch)
            samples += len(next(iter(batch.values())))
    return samples / (time.perf_counter() - started)
