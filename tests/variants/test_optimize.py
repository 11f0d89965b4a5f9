"""``servometer optimize`` on a copy of the digits demo: every kind is produced, checked against the reference and
listed in model.yaml; what fails the check or cannot be made is reported and left out."""

import numpy as np
import pytest
import yaml

from app.schema.manifest import load_manifest
from app.variants.optimize import optimize
from tests.helpers import copy_model

PRODUCED = ("fp32-opt", "int8-dynamic", "fp16")


@pytest.fixture
def digits(tmp_path, demo_models):
    """digits with only the build's own variants (fp32, int8, torchscript) listed."""
    folder = copy_model("digits", tmp_path)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] not in PRODUCED]
    (folder / "model.yaml").write_text("# kept comment\n" + yaml.safe_dump(manifest, sort_keys=False))
    (folder / "model.yaml").chmod(0o644)
    for name in PRODUCED:
        (folder / f"model.{name}.onnx").unlink()
    return folder


def test_every_onnx_kind_is_produced_agrees_with_the_reference_and_is_listed(digits):
    everything = optimize(digits)
    assert [(o.kind, o.kept) for o in everything] == [
        ("fp32-opt", True), ("int8-dynamic", True), ("int8-static", True), ("fp16", True), ("int4", False),
    ]  # fmt: skip
    # 4-bit weights are for MatMuls; the CNN's layers are Conv and Gemm: nothing to quantize, reported as such.
    assert (
        everything[-1].reason == "not supported here: ValueError: no MatMul with constant weights to quantize to 4 bits"
    )
    outcomes = everything[:-1]
    for outcome in outcomes:
        assert outcome.quality is not None
        assert outcome.quality.agreement is not None
        assert outcome.quality.agreement >= 0.97
        assert outcome.quality.samples == 360  # the whole held-out split
        assert (digits / outcome.file).is_file()
    by_name = {o.name: o.quality for o in outcomes}
    assert by_name["fp32-opt"] is not None
    assert by_name["fp32-opt"].max_abs_error < 1e-4  # the same arithmetic, rearranged
    manifest = load_manifest(digits)
    listed = {v.name: v for v in manifest.variants}
    assert listed["fp32-opt"].version == 4
    assert listed["int8-static"].precision == "int8"
    assert listed["fp16"].precision == "fp16"
    # Measured: only per-batch activation scales make a sample's answer depend on its batch companions.
    assert {o.name for o in outcomes if o.batch_dependent} == {"int8-dynamic"}
    assert [v.name for v in manifest.variants if v.batch_dependent] == ["int8-dynamic"]
    text = (digits / "model.yaml").read_text()
    assert text.startswith("# kept comment\n")
    assert (digits / "model.yaml").stat().st_mode & 0o777 == 0o644  # readable by a server running as another user
    optimize(digits)
    assert (digits / "model.yaml").read_text() == text  # a re-run changes nothing
    assert not list(digits.glob(".*staging*"))


def test_a_variant_too_far_from_the_reference_is_reported_and_left_out(digits):
    # Calibrating on blank images gives activation ranges of zero: the int8 model's answers are meaningless.
    np.savez(digits / "calibration.npz", images=np.zeros((64, 1, 8, 8), dtype=np.float32))
    (outcome,) = optimize(digits, {"int8-static": "int8-static"})
    assert not outcome.kept
    assert outcome.reason.startswith("too far from the reference: top-1 agreement")
    assert outcome.quality is not None
    assert outcome.quality.agreement is not None
    assert outcome.quality.agreement < 0.97
    assert not (digits / "model.int8-static.onnx").exists()
    assert "int8-static" not in {v.name for v in load_manifest(digits).variants}


def test_a_kind_that_cannot_be_made_is_reported_and_a_previous_entry_dropped(digits):
    optimize(digits, {"int8-static": "int8-static"})
    manifest = yaml.safe_load((digits / "model.yaml").read_text())
    del manifest["evaluation"]["calibration"]
    (digits / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (outcome,) = optimize(digits, {"int8-static": "int8-static"})
    assert not outcome.kept
    assert "names no 'evaluation.calibration'" in outcome.reason
    assert "int8-static" not in {v.name for v in load_manifest(digits).variants}


def test_a_torchscript_source_gives_a_frozen_torchscript_variant(digits):
    (outcome,) = optimize(digits, source=digits / "model.torchscript.pt")
    assert (outcome.kind, outcome.name, outcome.kept) == ("torchscript", "torchscript", True)
    assert outcome.quality is not None
    assert outcome.quality.max_abs_error < 1e-3
    listed = {v.name: v for v in load_manifest(digits).variants}
    assert listed["torchscript"].file == "model.torchscript.pt"
    assert listed["torchscript"].runtime == "torchscript"


def test_kinds_that_do_not_fit_the_source_are_refused(digits):
    with pytest.raises(ValueError, match=r"cannot be made from a onnx source"):
        optimize(digits, {"torchscript": "torchscript"})
