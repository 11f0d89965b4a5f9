from pathlib import Path

import pytest
import yaml

from app.schema.manifest import ManifestError, load_manifest

VALID = {
    "name": "m",
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    "variants": [
        {"name": "fp32", "file": "a.onnx", "runtime": "onnx"},
        {"name": "int8", "file": "b.onnx", "runtime": "onnx", "precision": "int8"},
    ],
    "batching": {"max_batch_size": 8},
}


def _write(tmp_path: Path, document: object, folder: str = "m") -> Path:
    target = tmp_path / folder
    target.mkdir()
    (target / "model.yaml").write_text(yaml.safe_dump(document))
    return target


def _with(**changes: object) -> dict:
    return {**VALID, **changes}


def test_valid_manifest_numbers_variants_and_defaults_to_the_first(tmp_path):
    manifest = load_manifest(_write(tmp_path, VALID))
    assert manifest.versions() == {"fp32": 1, "int8": 2}
    assert manifest.default == "fp32"
    assert manifest.cache.enabled is True


def test_demo_manifests_are_valid():
    root = Path(__file__).resolve().parents[2] / "models"
    for name in ("digits", "minilm", "minilm-ids"):
        assert load_manifest(root / name).name == name


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (_with(inputs=[{"name": "x", "datatype": "FLOAT", "shape": [-1]}]), "inputs[0].datatype"),
        (_with(inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 0]}]), "inputs[0].shape"),
        (
            _with(inputs=[{"name": "x", "datatype": "INT64", "shape": [-1, 4], "value_range": [9, 0]}]),
            "inputs[0].value_range: Value error, value_range [9.0, 0.0] must list the lowest value first",
        ),
        (
            _with(inputs=[{"name": "x", "datatype": "BYTES", "shape": [-1, 4], "value_range": [0, 9]}]),
            "input 'x': value_range needs a numeric datatype, not BYTES",
        ),
        (
            _with(outputs=[{"name": "y", "datatype": "FP32", "shape": [-1, 2], "value_range": [0, 1]}]),
            "output 'y': value_range and finite_only apply to inputs only",
        ),
        (_with(variants=[{"name": "a", "file": "../../etc/passwd", "runtime": "onnx"}]), "variants[0].file"),
        (_with(variants=[{"name": "a", "file": "http://x/m.onnx", "runtime": "onnx"}]), "variants[0].file"),
        (_with(variants=[{"name": "a", "file": "a.onnx", "runtime": "tensorflow"}]), "variants[0].runtime"),
        (_with(default_variant="fp16"), "default_variant 'fp16' is not one of the variants"),
        (
            _with(batching={"max_batch_size": 4, "preferred_batch_sizes": [8]}),
            "batching: Value error, preferred_batch_sizes [8]",
        ),
        (_with(batching={"max_batch_sizes": 4}), "batching.max_batch_sizes: Extra inputs are not permitted"),
        (_with(cache={"enabled": True, "ttl_s": 0}), "cache.ttl_s"),
        (_with(outputs=[{"name": "y", "datatype": "FP32", "shape": [2]}]), "first dimension must be -1"),
        (
            _with(
                variants=[{"name": "a", "file": "a", "runtime": "onnx"}, {"name": "a", "file": "b", "runtime": "onnx"}]
            ),
            "variant names must be unique",
        ),
        (
            _with(
                variants=[{"name": "2", "file": "a", "runtime": "onnx"}, {"name": "b", "file": "b", "runtime": "onnx"}]
            ),
            "may not equal another variant's version",
        ),
        (_with(inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 4], "max_shape": [-1]}]), "max_shape"),
    ],
)
def test_invalid_manifest_error_names_the_file_and_the_field(tmp_path, document, field):
    folder = _write(tmp_path, document)
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder.name}/model.yaml: ")  # named from the repository down, no absolute path
    assert str(tmp_path) not in message
    assert field in message


def test_manifest_name_must_match_its_folder(tmp_path):
    with pytest.raises(ManifestError, match="must equal the folder's name 'other'"):
        load_manifest(_write(tmp_path, VALID, folder="other"))


@pytest.mark.parametrize("text", ["name: [unclosed", "- just\n- a list\n"])
def test_unparseable_yaml_is_a_manifest_error(tmp_path, text):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.yaml").write_text(text)
    with pytest.raises(ManifestError, match="model.yaml"):
        load_manifest(folder)
