"""What the model file must have follows from the steps: tests of :func:`app.schema.steps.model_tensors` and the
manifest's checks of its steps."""

import pytest
from pydantic import ValidationError

from app.schema.manifest import ModelManifest

VARIANTS = [{"name": "fp32", "file": "model.onnx", "runtime": "onnx"}]


def _manifest(**fields: object) -> ModelManifest:
    return ModelManifest.model_validate({"name": "m", "variants": VARIANTS, **fields})


TEXT_MODEL = {
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [
        {"name": "embedding", "datatype": "FP32", "shape": [-1, 384]},
        {"name": "token_count", "datatype": "INT64", "shape": [-1]},
    ],
    "steps": {"before": [{"kind": "tokenize", "input": "text", "max_length": 128}]},
}


def test_a_tokenize_step_turns_text_into_the_token_tensors_the_model_takes():
    manifest = _manifest(**TEXT_MODEL)
    assert [(t.name, t.datatype, t.max_shape) for t in manifest.model_inputs] == [
        ("input_ids", "INT64", [-1, 128]),
        ("attention_mask", "INT64", [-1, 128]),
    ]
    # The token count is made before the model and handed past it: the model file need not return it.
    assert [t.name for t in manifest.model_outputs] == ["embedding"]
    assert manifest.text_inputs == ["text"]


def test_a_labels_step_reads_a_model_output_and_makes_the_class_outputs():
    manifest = _manifest(
        inputs=[{"name": "image", "datatype": "FP32", "shape": [-1, 4]}],
        outputs=[
            {"name": "class_name", "datatype": "BYTES", "shape": [-1]},
            {"name": "top_scores", "datatype": "FP32", "shape": [-1, 2]},
        ],
        steps={"after": [{"kind": "labels", "input": "logits", "classes": ["a", "b", "c"], "top_k": 2}]},
    )
    assert [t.name for t in manifest.model_inputs] == ["image"]
    assert manifest.model_outputs == []
    assert manifest.step_reads == ["logits"]  # not returned to clients, but the file must have it


def test_without_steps_the_model_takes_and_returns_what_clients_send_and_get():
    manifest = _manifest(
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
    )
    assert manifest.model_inputs == manifest.inputs
    assert manifest.model_outputs == manifest.outputs
    assert not manifest.steps


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": {"before": [{"kind": "tokenize", "input": "words"}]}}, r"reads \['words'\], which no input"),
        ({"inputs": [{"name": "text", "datatype": "FP32", "shape": [-1]}]}, "must be a BYTES input"),
        ({"steps": {"before": [{"kind": "tokenize", "input": "text", "file": "../x.json"}]}}, "inside the model"),
        ({"steps": {"before": [{"kind": "tokenize", "input": "text", "max_length": 1}]}}, "max_length"),
        ({"steps": {"before": [{"kind": "sorcery", "input": "text"}]}}, "kind"),
        ({"steps": {"after": [{"kind": "labels", "input": "y", "classes": ["only"]}]}}, "classes"),
        (
            {
                "steps": {
                    "after": [
                        {
                            "kind": "python",
                            "function": "f",
                            "inputs": ["y"],
                            "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                        }
                    ]
                }
            },
            "named like inputs",
        ),  # fmt: skip
    ],
)
def test_steps_that_cannot_work_are_refused_when_the_manifest_is_read(change, message):
    with pytest.raises(ValidationError, match=message):
        _manifest(**{**TEXT_MODEL, **change})


def test_a_step_before_the_model_leaves_what_it_reads_and_hands_declared_outputs_past_the_model():
    check = {"kind": "python", "function": "check", "inputs": ["image"],
             "outputs": [{"name": "checked", "datatype": "FP32", "shape": [-1]}]}  # fmt: skip
    manifest = _manifest(
        inputs=[{"name": "image", "datatype": "FP32", "shape": [-1, 4]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1, 1]}, {"name": "checked", "datatype": "FP32",
                                                                        "shape": [-1]}],
        steps={"before": [check]},
    )  # fmt: skip
    assert [t.name for t in manifest.model_inputs] == ["image"]
    assert [t.name for t in manifest.model_outputs] == ["y"]
