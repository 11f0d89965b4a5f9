"""Drift scores against the digits build's reference statistics: a stream from the held-out split stays under
the threshold, a shifted stream (inverted or noisy images) goes over it, and the two-sample test agrees."""

import random

import numpy as np
import pytest

from app.monitoring.drift import DriftMonitor
from app.monitoring.reference import load_reference
from app.monitoring.statistics import ks_two_sample, psi, shares
from tests.helpers import MODELS, digits_images, reference_outputs

THRESHOLD = 0.25  # digits' objectives.max_drift_psi


def _stream(images: np.ndarray) -> DriftMonitor:
    reference = load_reference(MODELS / "digits")
    assert reference is not None
    monitor = DriftMonitor(reference, "logits", sample_rate=1.0, window=1000, interval_s=1, rng=random.Random(0))
    outputs = reference_outputs("digits", "model.fp32.onnx", {"image": images})
    for index in range(len(images)):
        monitor.observe({"image": images[index : index + 1]}, {"logits": outputs["logits"][index : index + 1]})
    return monitor


def _by_feature(monitor: DriftMonitor) -> dict[str, tuple[float, float]]:
    return {score.feature: (score.psi, score.ks_pvalue) for score in monitor.scores()}


@pytest.mark.parametrize("source", ["held-out split", "training images"])
def test_a_stream_from_the_same_distribution_does_not_drift(demo_models, source):
    if source == "held-out split":
        images = digits_images(360)
    else:  # images the reference statistics never saw, from the same distribution
        with np.load(MODELS / "digits" / "calibration.npz") as data:
            images = data["images"][:500]
    scores = _by_feature(_stream(images))
    assert scores["image"][0] < 0.05
    assert scores["prediction"][0] < 0.05
    assert scores["image"][1] > 0.01  # the KS test finds no difference either


@pytest.mark.parametrize("shift", ["inverted", "noisy"])
def test_a_shifted_stream_drifts_past_the_threshold(demo_models, shift):
    images = digits_images(360)
    rng = np.random.default_rng(1)
    noise = rng.uniform(0, 8, images.shape)  # a sensor adding up to half the range to every pixel
    shifted = 16 - images if shift == "inverted" else np.clip(images + noise, 0, 16)
    scores = _by_feature(_stream(shifted.astype(np.float32)))
    assert scores["image"][0] > THRESHOLD, scores
    assert scores["image"][1] < 0.01
    if shift == "inverted":
        assert scores["prediction"][0] > THRESHOLD  # the model's answers shift with its inputs


def test_sampling_keeps_about_the_sample_rate_in_a_bounded_window(demo_models):
    reference = load_reference(MODELS / "digits")
    assert reference is not None
    monitor = DriftMonitor(reference, "logits", sample_rate=0.1, window=50, interval_s=1, rng=random.Random(3))
    image = digits_images(1)
    for _ in range(300):
        monitor.observe({"image": image}, {})
    assert 15 <= monitor.samples <= 50
    for _ in range(3000):
        monitor.observe({"image": image}, {})
    assert monitor.samples == 50


def test_psi_and_ks_on_known_distributions():
    even = [0.25, 0.25, 0.25, 0.25]
    assert psi(even, even) == 0
    assert psi(even, [0.7, 0.1, 0.1, 0.1]) == pytest.approx(
        sum((b - a) * np.log(b / a) for a, b in zip(even, [0.7, 0.1, 0.1, 0.1], strict=True))
    )
    assert shares(np.array([0.0, 1.0, 2.0, 3.0]), [0.5, 2.5]) == [0.25, 0.5, 0.25]
    rng = np.random.default_rng(0)
    same = ks_two_sample(rng.normal(size=500), rng.normal(size=500))
    moved = ks_two_sample(rng.normal(size=500), rng.normal(1, 1, size=500))
    assert same[1] > 0.05
    assert moved[0] > 0.3
    assert moved[1] < 1e-6


def test_sampled_requests_are_copied_out_of_their_request_bodies():
    reference = load_reference(MODELS / "digits")
    assert reference is not None
    monitor = DriftMonitor(reference, "logits", sample_rate=1.0, window=10, interval_s=1, rng=random.Random(0))
    body = bytearray(20 * 1024 * 1024)  # a request padded with 20 MB, its image a view at the end
    image = np.frombuffer(body, dtype=np.float32, count=64, offset=len(body) - 256).reshape(1, 1, 8, 8)
    batch_logits = np.zeros((64, 10), np.float32)
    monitor.observe({"image": image}, {"logits": batch_logits[3:4]})
    kept_inputs, kept_logits = monitor._window[0]
    assert not np.shares_memory(kept_inputs["image"], image)
    assert kept_inputs["image"].base is None
    assert kept_inputs["image"].nbytes == 256
    assert kept_logits is not None
    assert not np.shares_memory(kept_logits, batch_logits)
