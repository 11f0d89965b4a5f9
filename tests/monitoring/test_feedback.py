"""Feedback through the API: answers carry an id, feedback with known labels gives the exact live accuracy and
macro-F1, and bad feedback gets a clear 4xx. Drift gauges move with a shifted stream."""

import asyncio
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from app.context import AppContext
from app.errors import NotFound, Unavailable
from app.evaluation.quality import macro_f1
from app.monitoring.judged import MemoryJudged
from app.monitoring.ledger import FeedbackLedger
from tests.api.conftest import async_app
from tests.helpers import MODELS, copy_model, digits_images

JSON = {"content-type": "application/json"}


def _repository(tmp_path: Path) -> Path:
    folder = copy_model("digits", tmp_path / "models")
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["monitoring"] = {"sample_rate": 1.0, "window": 500, "interval_s": 0.2, "feedback_ttl_s": 60}
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return tmp_path / "models"


def _body(image: np.ndarray) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image.reshape(-1).tolist()}]}
    )


def _gauge(app, name: str, **labels: str) -> float | None:
    context: AppContext = app.state.context
    return context.metrics.sample_value(name, labels)


async def test_feedback_with_known_labels_gives_the_exact_live_accuracy(tmp_path, demo_models):
    images = digits_images(40)
    with np.load(MODELS / "digits" / "heldout.npz") as data:
        labels = data["labels"][:40]
    async with async_app(_repository(tmp_path), cache_backend="off") as (app, client):
        predicted, claimed = [], []
        for index in range(40):
            response = await client.post("/v2/models/digits/infer", content=_body(images[index]), headers=JSON)
            response_id = response.headers["servometer-response-id"]
            assert response.json()["parameters"]["response_id"] == response_id
            label = next(o for o in response.json()["outputs"] if o["name"] == "label")["data"][0]
            # Claim the true label for most answers, and a wrong one for every fifth, so accuracy is known exactly.
            truth = int(labels[index]) if index % 5 else (label + 1) % 10
            recorded = await client.post("/v2/models/digits/feedback", json={"id": response_id, "label": truth})
            assert recorded.status_code == 200, recorded.text
            assert recorded.json() == {"correct": label == truth}
            predicted.append(label)
            claimed.append(truth)
        expected_accuracy = float(np.mean(np.array(predicted) == np.array(claimed)))
        assert _gauge(app, "servometer_live_accuracy", model="digits", variant="fp32") == expected_accuracy
        assert _gauge(app, "servometer_live_macro_f1", model="digits", variant="fp32") == macro_f1(
            np.array(claimed), np.array(predicted)
        )
        assert _gauge(app, "servometer_live_feedback_samples", model="digits", variant="fp32") == 40
        incorrect = _gauge(app, "servometer_feedback_total", model="digits", variant="fp32", result="incorrect")
        assert incorrect == sum(p != c for p, c in zip(predicted, claimed, strict=True))


async def test_label_only_and_several_sample_answers_carry_one_id_per_sample_each_judged_on_its_own(
    tmp_path, demo_models
):
    images = digits_images(5)
    body = orjson.dumps({
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [5, 1, 8, 8], "data": images.reshape(-1).tolist()}],
        "outputs": [{"name": "label"}],
    })  # fmt: skip
    async with async_app(_repository(tmp_path), cache_backend="off") as (app, client):
        response = await client.post("/v2/models/digits/infer", content=body, headers=JSON)
        assert [output["name"] for output in response.json()["outputs"]] == ["label"]  # only what was asked for
        labels = response.json()["outputs"][0]["data"]
        ids = response.json()["parameters"]["response_id"].split(",")
        assert "servometer-response-id" not in response.headers  # kilobytes for a large batch: the body only
        assert len(set(ids)) == 5
        for index, (response_id, label) in enumerate(zip(ids, labels, strict=True)):
            truth = label if index < 3 else (label + 1) % 10  # three right, two wrong
            judged = await client.post("/v2/models/digits/feedback", json={"id": response_id, "label": truth})
            assert judged.json() == {"correct": index < 3}
        assert _gauge(app, "servometer_live_accuracy", model="digits", variant="fp32") == 0.6


async def test_unknown_repeated_or_mismatched_feedback_gets_a_clear_4xx(tmp_path, demo_models):
    async with async_app(_repository(tmp_path), cache_backend="off") as (_, client):
        response = await client.post("/v2/models/digits/infer", content=_body(digits_images(1)[0]), headers=JSON)
        response_id = response.headers["servometer-response-id"]
        unknown = await client.post("/v2/models/digits/feedback", json={"id": "nope", "label": 1})
        assert unknown.status_code == 404
        assert "no answer with id 'nope'" in unknown.json()["error"]
        no_label = await client.post("/v2/models/digits/feedback", json={"id": response_id})
        assert no_label.status_code == 400
        assert "needs 'label'" in no_label.json()["error"]
        bad_label = await client.post("/v2/models/digits/feedback", json={"id": response_id, "label": "seven"})
        assert bad_label.status_code == 400
        first = await client.post("/v2/models/digits/feedback", json={"id": response_id, "label": 1})
        assert first.status_code == 200
        again = await client.post("/v2/models/digits/feedback", json={"id": response_id, "label": 1})
        assert again.status_code == 404  # one judgement per answer
        assert (await client.post("/v2/models/nope/feedback", json={"id": response_id, "label": 1})).status_code == 404


async def test_an_expired_id_takes_no_feedback(tmp_path, demo_models):
    repository = _repository(tmp_path)
    manifest_path = repository / "digits" / "model.yaml"
    manifest = yaml.safe_load(manifest_path.read_text())
    manifest["monitoring"]["feedback_ttl_s"] = 0.1
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    async with async_app(repository, cache_backend="off") as (_, client):
        response = await client.post("/v2/models/digits/infer", content=_body(digits_images(1)[0]), headers=JSON)
        await asyncio.sleep(0.3)
        expired = await client.post(
            "/v2/models/digits/feedback", json={"id": response.headers["servometer-response-id"], "label": 0}
        )
        assert expired.status_code == 404
        assert "expired" in expired.json()["error"]


async def test_the_drift_gauge_rises_with_an_inverted_stream_and_stays_low_with_held_out_images(tmp_path, demo_models):
    images = digits_images(200)
    async with async_app(_repository(tmp_path), cache_backend="off") as (app, client):
        for image in images:
            await client.post("/v2/models/digits/infer", content=_body(image), headers=JSON)
        deadline = time.monotonic() + 30
        while _gauge(app, "servometer_drift_window_samples", model="digits", variant="fp32") != 200:
            assert time.monotonic() < deadline, "no drift round scored the 200 requests"
            await asyncio.sleep(0.05)
        calm = _gauge(app, "servometer_drift_psi", model="digits", variant="fp32", feature="image")
        assert calm is not None
        assert calm < 0.1
        for image in images:
            await client.post("/v2/models/digits/infer", content=_body(16 - image), headers=JSON)
        deadline = time.monotonic() + 30

        def scored_all() -> bool:  # a round may have scored part of the inverted stream: wait for one over all
            return _gauge(app, "servometer_drift_window_samples", model="digits", variant="fp32") == 400

        while not scored_all() or (_gauge(app, "servometer_drift_psi", model="digits", variant="fp32",
                                          feature="image") or 0) < 0.25:  # fmt: skip
            assert time.monotonic() < deadline, "the drift score did not rise"
            await asyncio.sleep(0.1)
        assert (_gauge(app, "servometer_drift_psi", model="digits", variant="fp32", feature="prediction") or 0) > 0.25
        assert _gauge(app, "servometer_drift_window_samples", model="digits", variant="fp32") == 400


async def test_answers_of_the_same_class_at_the_same_moment_get_distinct_ids():
    ledger = FeedbackLedger()
    ids = {ledger.issue("digits", "fp32", 3, 60.0) for _ in range(1000)}
    assert len(ids) == 1000
    for response_id in ids:
        await ledger.record("digits", response_id, 3, None, window=1000)
    assert ledger.live("digits", "fp32")[:2] == (1000, 1.0)


async def test_an_answer_is_judged_once_under_any_spelling_of_its_id():
    ledger = FeedbackLedger()
    response_id = ledger.issue("digits", "fp32", 3, 60.0)
    await ledger.record("digits", response_id, 3, None, window=1000)
    # The base64 decoder skips characters outside its alphabet: each of these decodes to the same answer.
    for spelling in (response_id + ".", response_id + "=", response_id + "!", "!" + response_id, response_id + "\n"):
        with pytest.raises(NotFound):
            await ledger.record("digits", spelling, 0, None, window=1000)
    assert ledger.live("digits", "fp32")[:2] == (1, 1.0)


async def test_ids_signed_with_a_shared_secret_are_accepted_by_every_process_that_has_it():
    secret = b"a-secret-shared-by-every-replica"
    issued = FeedbackLedger(secret).issue("digits", "fp32", 3, 60.0)
    assert (await FeedbackLedger(secret).record("digits", issued, 3, None, window=10)).predicted == 3
    with pytest.raises(NotFound):
        await FeedbackLedger(b"another-secret-of-another-one").record("digits", issued, 3, None, window=10)


async def test_feedback_bodies_are_bounded_like_every_other_body(tmp_path, demo_models):
    async with async_app(_repository(tmp_path), cache_backend="off") as (_, client):
        declared = await client.post("/v2/models/digits/feedback", content=b"{" + b" " * (2 << 20) + b"}", headers=JSON)
        assert declared.status_code == 413

        async def unannounced():  # chunked: no Content-Length to refuse it by
            for _ in range(400):
                yield b" " * (1 << 20)

        streamed = await client.post("/v2/models/digits/feedback", content=unannounced(), headers=JSON)
        assert streamed.status_code == 413
        assert "over the 1048576-byte limit" in streamed.json()["error"]


async def test_a_judged_id_is_remembered_until_it_expires_and_a_full_ledger_refuses_rather_than_forgets():
    ledger = FeedbackLedger(judged=MemoryJudged(max_judged=3))
    short = [ledger.issue("digits", "fp32", 1, 0.05) for _ in range(2)]
    for response_id in short:
        await ledger.record("digits", response_id, 1, None, window=10)
    time.sleep(0.06)  # the two short-lived ids expire: they make room, and stay refused by their expiry
    long = [ledger.issue("digits", "fp32", 1, 60.0) for _ in range(4)]
    for response_id in long[:3]:
        await ledger.record("digits", response_id, 1, None, window=10)
    with pytest.raises(Unavailable, match="no more feedback until the oldest expire"):
        await ledger.record("digits", long[3], 1, None, window=10)
    for response_id in long[:3]:
        with pytest.raises(NotFound, match="already judged"):
            await ledger.record("digits", response_id, 1, None, window=10)
    with pytest.raises(NotFound, match="expired"):
        await ledger.record("digits", short[0], 1, None, window=10)


def test_processes_sharing_a_secret_issue_distinct_ids_for_the_same_answer_at_the_same_moment(monkeypatch):
    monkeypatch.setattr("app.monitoring.ledger.time.time", lambda: 1_800_000_000.0)
    secret = b"a-secret-shared-by-every-replica"
    first, second = FeedbackLedger(secret), FeedbackLedger(secret)
    assert first.issue("digits", "fp32", 3, 60.0) != second.issue("digits", "fp32", 3, 60.0)
