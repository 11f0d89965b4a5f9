"""The variant report: figures from real, counted model calls; stored and reused by file digest."""

import math

import numpy as np
import pytest

from app.runtimes.base import RuntimeOptions
from app.schema.manifest import load_manifest
from app.variants import report as report_module
from app.variants.report import (
    BATCH_1_CALLS,
    MAX_BATCH_CALLS,
    Latency,
    ModelReport,
    ReportStore,
    build_report,
    report_key,
)
from tests.helpers import copy_model, digits_images, reference_outputs

NAMES = ["fp32", "int8", "torchscript", "fp32-opt", "int8-dynamic", "fp16"]


@pytest.fixture
def digits(tmp_path, demo_models):
    return copy_model("digits", tmp_path)


def test_every_figure_comes_from_counted_timed_calls_of_each_variant(digits, monkeypatch):
    calls: dict[str, int] = {}
    load = report_module.load_variant_runtime  # type: ignore[attr-defined]

    def counting(kind, path, options, manifest):
        runtime = load(kind, path, options, manifest)
        infer = runtime.infer

        def counted(feeds, names):
            calls[path.name] = calls.get(path.name, 0) + 1
            return infer(feeds, names)

        runtime.infer = counted  # type: ignore[method-assign]
        return runtime

    monkeypatch.setattr(report_module, "load_variant_runtime", counting)
    report = build_report(digits, load_manifest(digits), RuntimeOptions(), 3.6, NAMES)
    assert [v.name for v in report.variants] == NAMES
    assert report.evaluation_samples == 360
    quality_batches = math.ceil(360 / 64)
    for variant in report.variants:
        # quality batches, one warm-up per batch size, then the timed calls the figures report
        assert calls[variant.file] == quality_batches + 2 + variant.batch_1.calls + variant.max_batch.calls
        assert variant.batch_1 == Latency(
            batch=1, calls=BATCH_1_CALLS, p50_s=variant.batch_1.p50_s, p99_s=variant.batch_1.p99_s
        )
        assert variant.max_batch.batch == 64
        assert 5 <= variant.max_batch.calls <= MAX_BATCH_CALLS
        assert 0 < variant.batch_1.p50_s <= variant.batch_1.p99_s
        assert variant.throughput == pytest.approx(64 / variant.max_batch.p50_s)
        assert variant.cost_per_1k == pytest.approx(3.6 / 3600 * variant.max_batch.p50_s / 64 * 1000)
        assert variant.file_bytes == (digits / variant.file).stat().st_size
        assert variant.memory_bytes is not None
        assert variant.memory_bytes > 0


def test_quality_is_measured_against_the_true_labels_and_the_reference(digits):
    report = build_report(digits, load_manifest(digits), RuntimeOptions(), 0.0, ["fp32", "int8"])
    with np.load(digits / "heldout.npz") as data:
        labels = data["labels"]
    images = digits_images(360)
    fp32 = reference_outputs("digits", "model.fp32.onnx", {"image": images})["logits"]
    int8 = reference_outputs("digits", "model.int8.onnx", {"image": images})["logits"]
    by_name = {v.name: v for v in report.variants}
    assert by_name["fp32"].quality.accuracy == pytest.approx(float(np.mean(fp32.argmax(1) == labels)))
    assert by_name["fp32"].quality.max_abs_error == 0
    assert by_name["int8"].quality.agreement == pytest.approx(float(np.mean(int8.argmax(1) == fp32.argmax(1))))
    assert by_name["int8"].quality.max_abs_error == pytest.approx(float(np.abs(int8 - fp32).max()), rel=1e-5)
    assert by_name["fp32"].cost_per_1k is None  # no price configured
    assert "| int8 | int8 |" in report.table()


def test_a_stored_report_is_reused_until_a_variant_file_changes(digits, tmp_path):
    manifest = load_manifest(digits)
    key = report_key(digits, manifest, 0.0)
    report = build_report(digits, manifest, RuntimeOptions(), 0.0, ["fp32"])
    assert report.key == key
    ReportStore(tmp_path / "reports").put(report)
    assert ReportStore(tmp_path / "reports").get("digits", key) == report  # a restart reads it back
    (digits / "model.int8.onnx").write_bytes((digits / "model.int8.onnx").read_bytes() + b"\0")
    assert report_key(digits, manifest, 0.0) != key
    assert report_key(digits, manifest, 1.0) != key  # and a new price
    assert ReportStore(tmp_path / "reports").get("digits", report_key(digits, manifest, 0.0)) is None


def test_fastest_within_picks_the_fastest_variant_inside_the_tolerance(digits):
    report = build_report(digits, load_manifest(digits), RuntimeOptions(), 0.0, ["fp32", "int8"])
    fast_but_worse = report.variants[1].model_copy(
        update={
            "name": "cheap",
            "quality_loss": 0.05,
            "batch_1": report.variants[1].batch_1.model_copy(update={"p50_s": 1e-9}),
        }
    )
    edited = ModelReport.model_validate({**report.model_dump(), "variants": [*report.variants, fast_but_worse]})
    inside = {v.name: v for v in report.variants}
    assert edited.fastest_within(0.01) == min(inside.values(), key=lambda v: (v.batch_1.p50_s, v.name)).name
    assert edited.fastest_within(0.1) == "cheap"
    assert edited.fastest_within(0.1, candidates={"fp32", "int8"}) != "cheap"  # only ready variants count
