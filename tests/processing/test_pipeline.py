"""The pipeline runs a model's steps with it on whole batches: text batched by length gets the answers it gets
alone, long text is cut as the tokenizer config says, class names and the model folder's own code run after it."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from app.errors import StepFailed
from app.processing.pipeline import Pipeline
from app.runtimes.base import RuntimeLoadError, RuntimeOptions
from app.runtimes.onnx import OnnxRuntime
from app.schema.manifest import BatchingSpec, load_manifest
from app.schema.steps import StepsSpec
from tests.helpers import MODELS, digits_images

OUTPUTS = ("sentence_embedding", "token_count")
ONE_THREAD = RuntimeOptions(onnx_intra_op_threads=1, onnx_inter_op_threads=1)


def _texts(count: int) -> np.ndarray:
    lines = (MODELS / "minilm" / "texts.txt").read_text(encoding="utf-8").splitlines()
    # Every k-th line: short, medium and long texts mixed in no particular order.
    picked = lines[:: max(1, len(lines) // count)][:count]
    return _bytes_array(picked)


def _bytes_array(texts: list[str]) -> np.ndarray:
    array = np.empty(len(texts), dtype=np.object_)
    array[:] = [text.encode() for text in texts]
    return array


def _minilm(variant: str, budget: int) -> Pipeline:
    manifest = load_manifest(MODELS / "minilm")
    spec = next(v for v in manifest.variants if v.name == variant)
    runtime = OnnxRuntime(MODELS / "minilm" / spec.file, ONE_THREAD)
    return Pipeline(runtime, manifest.steps, MODELS / "minilm", BatchingSpec(max_batch_tokens=budget))


# fp16 computes inside in half precision, where the length a call is padded to moves the last digits.
@pytest.mark.parametrize(("variant", "atol"), [("fp32", 2e-6), ("int8", 2e-6), ("fp32-opt", 2e-6), ("fp16", 1e-4)])
def test_texts_of_mixed_lengths_batched_together_get_the_answers_they_get_alone(demo_models, variant, atol):
    texts = _texts(24)
    pipeline = _minilm(variant, budget=1024)
    together = pipeline.run({"text": texts}, OUTPUTS)
    assert together.calls > 1  # the budget cut the batch into calls of similar lengths
    assert together.tokens_sent == together.outputs["token_count"].sum() <= together.tokens_computed
    for row, text in enumerate(texts):
        alone = pipeline.run({"text": texts[row : row + 1]}, OUTPUTS).outputs
        assert alone["token_count"][0] == together.outputs["token_count"][row], text
        # Padding is masked and calls are cut by length: batch companions change no answer (static int8 scales
        # included) beyond float summation order.
        batched, single = together.outputs["sentence_embedding"][row], alone["sentence_embedding"][0]
        np.testing.assert_allclose(batched, single, atol=atol)
        assert float(batched @ single / np.linalg.norm(batched) / np.linalg.norm(single)) >= 0.99999


def test_a_batch_without_a_budget_is_one_call_padded_to_its_longest_text(demo_models):
    texts = _texts(8)
    computed = _minilm("fp32", budget=0).run({"text": texts}, OUTPUTS)
    counts = computed.outputs["token_count"]
    assert computed.calls == 1
    assert computed.tokens_computed == len(texts) * counts.max()
    assert computed.outputs["sentence_embedding"].shape == (8, 384)
    assert computed.before_s > 0
    assert computed.compute_s > 0


def test_asking_only_for_what_a_step_makes_needs_no_model_call(demo_models):
    computed = _minilm("fp32", budget=256).run({"text": _bytes_array(["Servometer serves models fast."])},
                                                ("token_count",))  # fmt: skip
    assert computed.outputs["token_count"].tolist() == [9]
    assert computed.calls == 0


def test_a_text_longer_than_the_model_takes_is_cut_to_max_length(demo_models):
    long_text = " ".join(["serving"] * 600)
    computed = _minilm("fp32", budget=512).run({"text": _bytes_array([long_text, "short"])}, OUTPUTS)
    assert computed.outputs["token_count"].tolist() == [256, 3]  # [CLS] + 254 word pieces + [SEP]
    assert np.allclose(np.linalg.norm(computed.outputs["sentence_embedding"], axis=1), 1, atol=1e-5)


def _digits(steps: Mapping[str, object], folder: Path, allow_model_code: bool = False) -> Pipeline:
    runtime = OnnxRuntime(MODELS / "digits" / "model.fp32.onnx", ONE_THREAD)
    return Pipeline(runtime, StepsSpec.model_validate(steps), folder, None, allow_model_code)


NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LABELS = {"after": [{"kind": "labels", "input": "logits", "classes": NAMES, "top_k": 3}]}


def test_the_labels_step_names_the_best_classes_with_their_probabilities(demo_models):
    images = digits_images(16)
    wanted = ("label", "class_name", "top_classes", "top_scores", "probabilities")
    outputs = _digits(LABELS, MODELS / "digits").run({"image": images}, wanted).outputs
    assert outputs["class_name"].tolist() == [NAMES[label].encode() for label in outputs["label"]]
    assert outputs["top_classes"].shape == outputs["top_scores"].shape == (16, 3)
    assert outputs["top_classes"][:, 0].tolist() == outputs["class_name"].tolist()
    scores = outputs["top_scores"]
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    best = np.sort(outputs["probabilities"], axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(scores, best, atol=1e-5)  # softmax of the logits: the model's own probabilities


PROGRAM = """
import numpy as np

def confidence(tensors):
    return {"confidence": tensors["probabilities"].max(axis=1)}

def broken(tensors):
    raise RuntimeError("the operator's bug")
"""


def _python_step(function: str) -> dict[str, object]:
    output = {"name": "confidence", "datatype": "FP32", "shape": [-1]}
    return {"after": [{"kind": "python", "function": function, "inputs": ["probabilities"], "outputs": [output]}]}


def test_a_python_step_runs_the_folders_process_py_only_when_model_code_is_allowed(demo_models, tmp_path):
    (tmp_path / "process.py").write_text(PROGRAM)
    with pytest.raises(RuntimeLoadError, match="model code is off"):
        _digits(_python_step("confidence"), tmp_path)
    pipeline = _digits(_python_step("confidence"), tmp_path, allow_model_code=True)
    outputs = pipeline.run({"image": digits_images(4)}, ("confidence", "probabilities")).outputs
    np.testing.assert_allclose(outputs["confidence"], outputs["probabilities"].max(axis=1))
    assert outputs["confidence"].dtype == np.float32
    with pytest.raises(RuntimeLoadError, match="no function 'missing'"):
        _digits(_python_step("missing"), tmp_path, allow_model_code=True)


def test_a_failing_step_fails_with_a_message_naming_the_step_and_not_its_internals(demo_models, tmp_path):
    (tmp_path / "process.py").write_text(PROGRAM)
    pipeline = _digits(_python_step("broken"), tmp_path, allow_model_code=True)
    with pytest.raises(StepFailed, match=r"processing step 'python' after the model failed .*RuntimeError") as caught:
        pipeline.run({"image": digits_images(2)}, ("confidence",))
    assert caught.value.status == 500
    assert "operator's bug" not in caught.value.message  # its own text stays in the server's log
