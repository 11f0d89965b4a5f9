"""The live page's documents from a timeline sampled at chosen moments: an objective breached long enough shows as
firing, one that recovers holds again, and GPUs appear when NVML reports them."""

import time
from dataclasses import dataclass
from typing import Any

import pytest

from app.config import Settings
from app.live.documents import Documents, sampled_timeline
from app.repository.registry import Registry
from app.runtimes.base import runtime_options
from app.telemetry.gpu import GpuSampler
from app.telemetry.metrics import Metrics
from tests.fake_nvml.pynvml import FakeNvml


@dataclass(frozen=True)
class Drift:
    feature: str
    psi: float
    ks_statistic: float = 0.5
    ks_pvalue: float = 0.01


@pytest.fixture
def registry(demo_models) -> Registry:
    """The demo repository read, nothing loaded: the documents list its models and variants."""
    scanned = Registry(demo_models, runtime_options(Settings()))
    scanned.scan()
    return scanned


def _check(documents: Documents, alert: str) -> dict[str, Any]:
    digits = next(model for model in documents.overview().models if model.name == "digits")
    fp32 = next(variant for variant in digits.variants if variant.name == "fp32")
    return next(check for check in fp32.checks if check.alert == alert).model_dump()


def test_a_latency_objective_breached_past_the_rules_for_is_shown_firing_then_holding_once_recovered(registry):
    metrics = Metrics()
    metrics.set_objectives("digits", 0.01, None, None, None)
    variant = metrics.for_variant("digits", "fp32")
    timeline = sampled_timeline(metrics)
    documents = Documents(registry, timeline, workers=1)
    start = time.time() - 700
    for second in range(400):  # 400 s of requests taking 0.5 s against an objective of 10 ms
        variant.observe_request("success", 0.5)
        metrics.flush()
        timeline.sample(start + second)
    breached = _check(documents, "ServometerLatencyAboveObjective")
    assert breached["holds"] is False
    assert breached["firing"] is True  # breached for longer than the rule's 5 minutes
    assert breached["threshold"] == 0.01
    assert breached["from_objective"] is True
    assert 390 <= breached["breached_for_s"] <= 399
    assert breached["value"] == pytest.approx(0.5, rel=0.5)
    for second in range(400, 700):  # 5 minutes of fast requests: the 5-minute window no longer holds a slow one
        variant.observe_request("success", 0.001)
        metrics.flush()
        timeline.sample(start + second)
    recovered = _check(documents, "ServometerLatencyAboveObjective")
    assert recovered["holds"] is True
    assert recovered["firing"] is False
    errors = _check(documents, "ServometerErrorRatioAboveObjective")
    assert errors["holds"] is True
    assert errors["threshold"] == 0.05  # the rule's own line: digits' objective was not set here
    assert errors["from_objective"] is False


def test_gpus_reported_by_nvml_are_shown_with_their_series(registry):
    metrics = Metrics()
    GpuSampler(metrics, FakeNvml(), 1.0).sample()
    timeline = sampled_timeline(metrics)
    now = time.time()
    timeline.sample(now - 1)
    timeline.sample(now)
    documents = Documents(registry, timeline, workers=1)
    gpus = {gpu.gpu: gpu for gpu in documents.overview().gpus}
    assert sorted(gpus) == ["0", "1"]
    assert gpus["1"].utilization == 0.9
    assert gpus["0"].memory_used_bytes == 2**30
    assert gpus["0"].power_watts == 250.0
    series = documents.series("digits", "fp32", None).series
    assert series["gpu1_utilization_ratio"][-1] == 0.9
    assert series["gpu0_power_watts"][-1] == 250.0


def test_without_gpus_nothing_gpu_is_shown(registry):
    metrics = Metrics()
    timeline = sampled_timeline(metrics)
    timeline.sample(time.time())
    documents = Documents(registry, timeline, workers=1)
    assert documents.overview().gpus == []
    assert not [name for name in documents.series("digits", "fp32", None).series if name.startswith("gpu")]


def test_a_breach_as_long_as_the_slowest_rules_for_is_shown_firing(registry):
    """Drift fires after 15 minutes: the timeline keeps enough samples to get there."""
    metrics = Metrics()
    timeline = sampled_timeline(metrics)
    documents = Documents(registry, timeline, workers=1)
    start = time.time() - 1000
    for second in range(1000):
        metrics.set_drift("digits", "fp32", 100, [Drift("image", 0.9)])
        timeline.sample(start + second)
    drift = _check(documents, "ServometerInputDrift")
    assert drift["subject"] == "digits/fp32 image"
    assert drift["threshold"] == 0.25
    assert drift["breached_for_s"] >= 900
    assert drift["firing"] is True


def test_series_of_a_variant_named_by_version_are_its_own_and_every_series_is_as_long_as_t(registry):
    metrics = Metrics()
    GpuSampler(metrics, FakeNvml(), 1.0).sample()
    variant = metrics.for_variant("digits", "fp32")
    timeline = sampled_timeline(metrics)
    documents = Documents(registry, timeline, workers=1)
    start = time.time() - 5
    for second in range(5):
        variant.observe_request("success", 0.002)
        metrics.flush()
        timeline.sample(start + second)
    by_version = documents.series("digits", "1", None)
    assert by_version.variant == "fp32"
    assert by_version.series["requests_success"][-1] == pytest.approx(1.0)
    assert len(by_version.t) == 4  # the first sample only starts the rates
    assert {len(values) for values in by_version.series.values()} == {len(by_version.t)}
    later = documents.series("digits", "fp32", by_version.t[-2])
    assert later.t == by_version.t[-1:]
    assert documents.series("digits", "fp32", by_version.t[-1]).t == []
