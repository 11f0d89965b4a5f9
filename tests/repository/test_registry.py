import shutil

import pytest
import yaml

from app.errors import InvalidRequest, NotFound, Unavailable
from app.repository.registry import Registry, VariantState
from app.runtimes.base import RuntimeOptions
from tests.helpers import copy_model


@pytest.fixture
def repository(tmp_path, demo_models):
    copy_model("digits", tmp_path)
    return tmp_path


def _loaded(root) -> Registry:
    registry = Registry(root, RuntimeOptions())
    registry.scan()
    registry.load_all()
    return registry


def test_variants_resolve_by_number_name_or_default(repository):
    registry = _loaded(repository)
    assert registry.resolve("digits", None).name == "fp32"
    assert registry.resolve("digits", "2").name == "int8"
    assert registry.resolve("digits", "torchscript").version == 3


def test_loaded_variants_are_not_ready_until_the_service_has_warmed_them_up(repository):
    registry = _loaded(repository)
    assert registry.resolve("digits", None).state is VariantState.LOADED
    assert registry.required_failures() == ["required model 'digits' variant 'fp32': warming up"]
    registry.resolve("digits", None).state = VariantState.READY
    assert registry.required_failures() == []


def test_an_unloaded_required_model_keeps_the_server_not_ready_until_it_is_loaded_again(repository):
    registry = _loaded(repository)
    entry = registry.remove("digits")
    assert registry.required_failures() == ["required model 'digits' is not loaded (it was unloaded)"]
    registry.install(entry)
    assert registry.required_failures() == ["required model 'digits' variant 'fp32': warming up"]


@pytest.mark.parametrize(("model", "version", "error"), [("nope", None, NotFound), ("digits", "7", NotFound)])
def test_unknown_model_or_variant_is_not_found(repository, model, version, error):
    with pytest.raises(error):
        _loaded(repository).resolve(model, version)


def test_a_broken_manifest_leaves_the_other_models_serving(repository):
    (repository / "broken").mkdir()
    (repository / "broken" / "model.yaml").write_text("name: broken\ninputs: nope\n")
    registry = _loaded(repository)
    assert registry.resolve("digits", None).state is VariantState.LOADED
    with pytest.raises(Unavailable, match=r"broken/model.yaml: inputs"):
        registry.resolve("broken", None)


def test_a_corrupt_file_marks_only_that_variant_unavailable(repository):
    (repository / "digits" / "model.int8.onnx").write_bytes(b"not an onnx file")
    registry = _loaded(repository)
    int8 = registry.resolve("digits", "int8")
    assert int8.state is VariantState.UNAVAILABLE
    assert "onnxruntime cannot load model.int8.onnx" in int8.reason
    assert registry.resolve("digits", "fp32").state is VariantState.LOADED


def test_a_required_model_whose_default_variant_fails_keeps_the_server_not_ready(repository):
    (repository / "digits" / "model.fp32.onnx").unlink()
    registry = _loaded(repository)
    (reason,) = registry.required_failures()
    assert "required model 'digits' variant 'fp32'" in reason
    assert "files of its build are gone: ['model.fp32.onnx']" in reason


def test_a_manifest_that_disagrees_with_the_file_marks_the_variant_unavailable(repository):
    path = repository / "digits" / "model.yaml"
    document = yaml.safe_load(path.read_text())
    document["inputs"][0]["datatype"] = "FP64"
    path.write_text(yaml.safe_dump(document))
    registry = _loaded(repository)
    assert "input 'image' is FP32 in the file, FP64 in model.yaml" in registry.resolve("digits", "fp32").reason


def test_digest_changes_when_the_model_file_or_its_processing_steps_change(repository, demo_models):
    target = repository / "digits" / "model.fp32.onnx"
    before = _loaded(repository).resolve("digits", "fp32").digest
    shutil.copy(demo_models / "digits" / "model.int8.onnx", target)
    after_file = _loaded(repository).resolve("digits", "fp32").digest
    manifest = repository / "digits" / "model.yaml"
    manifest.write_text(manifest.read_text().replace("classes: [zero, one,", "classes: [nil, one,"))
    after_steps = _loaded(repository).resolve("digits", "fp32").digest
    assert len({before, after_file, after_steps}) == 3  # cached answers follow either change


def _rename(folder, name):
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["name"] = name
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))


def test_the_start_up_scan_skips_a_folder_that_links_out_of_the_repository(repository, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "evil"
    shutil.copytree(repository / "digits", outside)
    _rename(outside, "evil")
    (repository / "evil").symlink_to(outside)
    registry = _loaded(repository)
    assert [entry.name for entry in registry.models()] == ["digits"]
    with pytest.raises(NotFound):
        registry.reload("evil")  # the load API asks the same question


@pytest.mark.parametrize("linked", ["model.int8.onnx", "heldout.npz", "reference-stats.json"])
def test_a_model_whose_folder_links_out_of_it_is_not_served_by_the_scan_or_a_reload(
    repository, tmp_path_factory, linked
):
    outside = tmp_path_factory.mktemp("outside")
    inside = repository / "digits" / linked
    shutil.move(inside, outside / linked)
    inside.symlink_to(outside / linked)
    for entry in (_loaded(repository).get("digits"), Registry(repository, RuntimeOptions()).reload("digits")[0]):
        for variant in entry.variants.values():
            assert variant.state is VariantState.UNAVAILABLE
            assert f"its folder holds links out of it ({linked})" in variant.reason
            assert variant.runtime is None


def test_reasons_shown_to_clients_carry_no_absolute_paths(repository):
    (repository / "digits" / "model.fp32.onnx").write_bytes(b"not a model")
    manifest = repository / "broken" / "model.yaml"
    manifest.parent.mkdir()
    manifest.write_text("name: broken\ninputs: []\n")
    registry = _loaded(repository)
    reasons = [registry.get("broken").error, registry.resolve("digits", "fp32").reason, *registry.required_failures()]
    assert all(reasons)
    for reason in reasons:
        assert str(repository) not in reason, reason
        assert "/tmp" not in reason, reason


def test_public_texts_keep_repository_names_and_drop_every_other_absolute_path(repository):
    registry = Registry(repository, RuntimeOptions())
    text = (
        f"{repository.resolve()}/digits/model.fp32.onnx failed:/onnxruntime_src/onnxruntime/core/graph/"
        "model_load_utils.h:46 void onnxruntime::model_load_utils::ValidateOpsetForDomain opset 99"
    )
    assert (
        registry.public(text) == "digits/model.fp32.onnx failed:…:46 void onnxruntime::model_load_utils::"
        "ValidateOpsetForDomain opset 99"
    )


def test_a_model_name_with_a_null_byte_is_a_client_error(repository):
    with pytest.raises(InvalidRequest, match="null byte"):
        Registry(repository, RuntimeOptions()).reload("dig\0its")
