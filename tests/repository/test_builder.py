import shutil

import pytest

from app.repository.builder import build_models
from app.repository.registry import file_digest
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
