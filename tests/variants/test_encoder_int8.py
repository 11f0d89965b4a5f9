"""Static INT8 for a transformer encoder (the MiniLM demo): every recipe tried and reported, the one that keeps the
answers kept (fixed scales: no answer moves with its batch), the report's embedding measures, and the acceptance
check refusing a damaged variant on the measure the model names."""

import shutil

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper

from app.runtimes.base import RuntimeOptions
from app.schema.manifest import load_manifest
from app.variants.encoder_int8 import RECIPES
from app.variants.optimize import optimize
from app.variants.report import build_report, file_digests

SAMPLES = 96  # of the 220 evaluation texts: enough to tell the recipes apart, quick enough for every run


@pytest.fixture
def minilm(tmp_path, demo_models):
    """minilm with only its fp32 variant, evaluated on its first texts."""
    folder = tmp_path / "minilm"
    shutil.copytree(demo_models / "minilm", folder, ignore=lambda _, names: [n for n in names if n.endswith(".onnx")])
    shutil.copy2(demo_models / "minilm" / "model.fp32.onnx", folder)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] == "fp32"]
    manifest["evaluation"]["max_samples"] = SAMPLES
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def test_int8_static_of_an_encoder_tries_every_recipe_and_keeps_the_one_that_keeps_the_answers(minilm):
    (outcome,) = optimize(minilm, {"int8-static": "int8"})
    assert [trial.recipe for trial in outcome.trials] == list(RECIPES)
    trials = {trial.recipe: trial for trial in outcome.trials}
    # One static scale across the FFN output's outliers loses the answers; splitting the outliers off keeps them.
    assert (trials["minmax"].cosine_mean or 0) < 0.95
    assert (trials["ffn-split"].cosine_mean or 0) > (trials["ffn-out-float"].cosine_mean or 0)
    assert trials["ffn-split"].kept
    assert outcome.kept
    assert not outcome.batch_dependent  # fixed scales: measured alone against within batches
    assert outcome.quality is not None
    assert outcome.quality.cosine_mean is not None
    assert outcome.quality.cosine_mean >= 0.99
    assert outcome.quality.cosine_min is not None
    assert outcome.quality.cosine_min >= 0.98
    assert all(trial.samples_per_s for trial in outcome.trials)
    listed = {v.name: v for v in load_manifest(minilm).variants}
    assert listed["int8"].description.endswith("recipe ffn-split")

    manifest = load_manifest(minilm)
    report = build_report(minilm, manifest, RuntimeOptions(), 0.0, ["fp32", "int8"], file_digests(minilm, manifest))
    qualities = {variant.name: variant.quality for variant in report.variants}
    assert qualities["fp32"].retrieval_top5 == 1.0
    assert qualities["fp32"].similarity_spearman == pytest.approx(1.0)
    assert qualities["int8"].retrieval_top5 is not None
    assert 0.5 < qualities["int8"].retrieval_top5 <= 1.0
    assert qualities["int8"].similarity_spearman is not None
    assert qualities["int8"].similarity_spearman > 0.9


def test_the_acceptance_check_refuses_a_damaged_variant_on_the_measure_the_model_names(minilm, tmp_path):
    manifest = yaml.safe_load((minilm / "model.yaml").read_text())
    manifest["evaluation"].update(measure="retrieval", min_retrieval=0.9, min_cosine=-1.0)  # cosine alone would pass
    (minilm / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    model = onnx.load(str(minilm / "model.fp32.onnx"))
    generator = np.random.default_rng(0)
    for tensor in model.graph.initializer:  # noise on every large weight: embeddings shift, neighbours change
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 10_000:
            noisy = values + generator.normal(0, 0.5 * float(values.std()), values.shape).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(noisy, tensor.name))
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    (outcome,) = optimize(minilm, {"fp32-opt": "damaged"}, source=damaged)
    assert not outcome.kept
    assert "top-5 retrieval agreement" in outcome.reason
    assert outcome.quality is not None
    assert outcome.quality.retrieval_top5 is not None
    assert outcome.quality.retrieval_top5 < 0.9
    assert not (minilm / "model.damaged.onnx").exists()
    assert "damaged" not in {v.name for v in load_manifest(minilm).variants}
