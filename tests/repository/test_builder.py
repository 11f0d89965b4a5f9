import shutil

import pytest

from app.repository.build_record import BUILD_RECORD, BuildRecord, incomplete_build
from app.repository.builder import build_models
from app.repository.registry import Registry, VariantState, file_digest
from app.runtimes.base import RuntimeOptions
from tests.helpers import MODELS


def _fresh_digits(root):
    folder = root / "digits"
    folder.mkdir(parents=True)
    for name in ("build.py", "model.yaml"):
        shutil.copy(MODELS / "digits" / name, folder / name)
    return folder


def _digests(folder) -> dict[str, str]:
    return {
        path.name: file_digest(path) for path in sorted(folder.iterdir()) if path.suffix in {".onnx", ".pt", ".npz"}
    }


def test_digits_builds_byte_for_byte_the_same_every_time(tmp_path):
    # Exported files record the build script's path in their debug info, so rebuild in the same place.
    folder = _fresh_digits(tmp_path)
    assert [r.built for r in build_models(tmp_path)] == [True]
    digests = _digests(folder)
    manifest = (folder / "model.yaml").read_bytes()
    assert set(digests) == {
        "model.fp32.onnx", "model.int8.onnx", "model.torchscript.pt", "heldout.npz", "calibration.npz",
        "model.fp32-opt.onnx", "model.int8-dynamic.onnx", "model.fp16.onnx",
    }  # fmt: skip
    record = BuildRecord.model_validate_json((folder / BUILD_RECORD).read_bytes())
    assert set(record.files) == {*digests, "reference-stats.json"}  # every file the build wrote
    assert [r.detail for r in build_models(tmp_path)] == ["up to date"]
    assert [r.built for r in build_models(tmp_path, force=True)] == [True]
    assert _digests(folder) == digests
    assert (folder / "model.yaml").read_bytes() == manifest  # the optimize step rewrites it to the same bytes


def test_building_an_unknown_model_or_a_failing_script_is_an_error(tmp_path):
    folder = _fresh_digits(tmp_path)
    with pytest.raises(ValueError, match=r"no model folders \['nope'\]"):
        build_models(tmp_path, ["nope"])
    (folder / "build.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(RuntimeError, match="failed with exit code 3"):
        build_models(tmp_path)


def test_a_script_that_does_not_produce_the_files_is_an_error(tmp_path):
    folder = _fresh_digits(tmp_path)
    (folder / "build.py").write_text("print('did nothing')\n")
    with pytest.raises(RuntimeError, match="did not produce"):
        build_models(tmp_path)


def _copying_script(dies_before_the_last: bool) -> str:
    """A build that writes the demo's built files one at a time (taking seconds, not a training run), and with
    ``dies_before_the_last`` fails before the last: an interrupted or failing build."""
    names = sorted(BuildRecord.model_validate_json((MODELS / "digits" / BUILD_RECORD).read_bytes()).files)
    copied = names[:-1] if dies_before_the_last else names
    return "\n".join([
        "import shutil",
        *(f"shutil.copy({str(MODELS / 'digits' / name)!r}, {name!r})" for name in copied),
        "raise SystemExit(1)" if dies_before_the_last else "",
    ])  # fmt: skip


def test_a_build_that_fails_halfway_is_not_served_and_the_next_build_redoes_it(tmp_path, demo_models):
    folder = _fresh_digits(tmp_path)
    (folder / "build.py").write_text(_copying_script(dies_before_the_last=True))
    with pytest.raises(RuntimeError, match="failed with exit code 1"):
        build_models(tmp_path)
    assert (folder / "model.fp32.onnx").is_file()  # it got that far
    assert "its build has not completed" in incomplete_build(folder)

    registry = Registry(tmp_path, RuntimeOptions())
    registry.scan()
    registry.load_all()
    fp32 = registry.resolve("digits", "fp32")
    assert fp32.state is VariantState.UNAVAILABLE
    assert "run `servometer models build digits`" in fp32.reason
    assert registry.required_failures()

    (folder / "build.py").write_text(_copying_script(dies_before_the_last=False))
    (result,) = build_models(tmp_path)  # as the next `servometer serve` does
    assert result.built
    assert incomplete_build(folder, check_sizes=True) == ""


def _built_digits(root):
    folder = _fresh_digits(root)
    (folder / "build.py").write_text(_copying_script(dies_before_the_last=False))
    (result,) = build_models(root)
    assert result.built
    assert incomplete_build(folder, check_sizes=True) == ""
    return folder


def test_a_complete_build_missing_one_of_its_files_is_built_again(tmp_path, demo_models):
    folder = _built_digits(tmp_path)
    assert [r.detail for r in build_models(tmp_path)] == ["up to date"]
    (folder / "reference-stats.json").unlink()
    assert incomplete_build(folder) == "files of its build are gone: ['reference-stats.json']"
    (result,) = build_models(tmp_path)
    assert result.built
    assert (folder / "reference-stats.json").is_file()


def test_a_truncated_file_of_a_build_is_built_again_but_left_to_loading_by_the_registry(tmp_path, demo_models):
    folder = _built_digits(tmp_path)
    data = (folder / "model.int8.onnx").read_bytes()
    (folder / "model.int8.onnx").write_bytes(data[: len(data) // 2])  # a copy cut short
    assert incomplete_build(folder) == ""  # the registry loads it: only that variant fails, with ORT's reason
    assert incomplete_build(folder, check_sizes=True) == "files of its build changed size since: ['model.int8.onnx']"
    (result,) = build_models(tmp_path)
    assert result.built
    assert (folder / "model.int8.onnx").read_bytes() == data
