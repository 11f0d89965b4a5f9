"""Routing policies for requests that name no variant, through the in-process app: weighted A/B splits (sticky
with a routing key), shadow copies that never change a response, and fastest_within from the variant report."""

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from app.context import AppContext
from tests.api.conftest import async_app
from tests.helpers import copy_model, digits_images, reference_outputs

JSON = {"content-type": "application/json"}


def _digits_routed(root: Path, routing: dict, **batching: object) -> Path:
    folder = copy_model("digits", root)
    manifest = yaml.safe_load((folder / "model.yaml").read_text())
    manifest["routing"] = routing
    manifest["batching"].update(batching)
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


def _body(index: int = 0) -> bytes:
    image = digits_images(index + 1)[index : index + 1]
    return orjson.dumps(
        {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": image.reshape(-1).tolist()}]}
    )


async def test_weighted_routing_splits_traffic_by_share_within_statistical_tolerance(tmp_path, demo_models):
    root = _digits_routed(tmp_path, {"policy": "weighted", "weights": {"fp32": 70, "int8": 30}})
    async with async_app(root, cache_backend="off") as (_, client):
        served = []
        for _ in range(1000):
            response = await client.post("/v2/models/digits/infer", content=_body(), headers=JSON)
            served.append(response.headers["servometer-variant"])
            assert response.json()["parameters"]["variant"] == served[-1]
    assert set(served) == {"fp32", "int8"}
    # Binomial(1000, 0.3): standard deviation 14.5; 4.5 of them makes a false failure about one in 150,000.
    assert abs(served.count("int8") - 300) < 65


async def test_a_routing_key_sticks_to_one_variant_and_keys_spread_over_both(tmp_path, demo_models):
    root = _digits_routed(tmp_path, {"policy": "weighted", "weights": {"fp32": 50, "int8": 50}})
    async with async_app(root, cache_backend="off") as (_, client):

        async def variant_for(key: str) -> str:
            headers = {**JSON, "servometer-routing-key": key}
            response = await client.post("/v2/models/digits/infer", content=_body(), headers=headers)
            return response.headers["servometer-variant"]

        assert {await variant_for("user-42") for _ in range(30)} == {await variant_for("user-42")}
        by_key = [await variant_for(f"user-{n}") for n in range(200)]
        assert 60 < by_key.count("int8") < 140
        named = await client.post("/v2/models/digits/versions/torchscript/infer", content=_body(), headers=JSON)
        assert named.headers["servometer-variant"] == "torchscript"


def _metric(app, name: str, **labels: str) -> float:
    context: AppContext = app.state.context
    return context.metrics.sample_value(name, labels) or 0.0


async def _until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_shadow_traffic_never_changes_or_waits_for_the_response(tmp_path, demo_models, monkeypatch):
    # Model calls in worker threads, so a held candidate holds only its own thread.
    root = _digits_routed(tmp_path, {"policy": "shadow", "candidate": "int8"}, inline_compute_below_ms=0)
    async with async_app(root, cache_backend="off") as (app, client):
        context: AppContext = app.state.context
        candidate = context.registry.resolve("digits", "int8").runtime
        assert candidate is not None
        original, gate = candidate.infer, threading.Event()

        def held(inputs, outputs):
            gate.wait(30)
            return original(inputs, outputs)

        monkeypatch.setattr(candidate, "infer", held)
        expected = reference_outputs("digits", "model.fp32.onnx", {"image": digits_images(8)})
        for index in range(8):
            started = time.monotonic()
            response = await client.post("/v2/models/digits/infer", content=_body(index), headers=JSON)
            assert time.monotonic() - started < 5  # answered while the candidate is held
            assert response.headers["servometer-variant"] == "fp32"
            logits = next(o for o in response.json()["outputs"] if o["name"] == "logits")
            assert np.array_equal(np.array(logits["data"], dtype=np.float32), expected["logits"][index])
        assert _metric(app, "servometer_shadow_comparisons_total", model="digits", variant="int8", result="agree") == 0
        gate.set()
        await _until(
            lambda: (
                _metric(app, "servometer_shadow_comparisons_total", model="digits", variant="int8", result="agree") == 8
            )
        )


async def test_a_disagreeing_candidate_is_counted_and_its_answers_never_returned(tmp_path, demo_models, monkeypatch):
    root = _digits_routed(tmp_path, {"policy": "shadow", "candidate": "int8"})
    async with async_app(root, cache_backend="off") as (app, client):
        context: AppContext = app.state.context
        candidate = context.registry.resolve("digits", "int8").runtime
        assert candidate is not None
        original = candidate.infer

        def wrong(inputs, outputs):
            result = original(inputs, outputs)
            return {name: np.roll(array, 1, axis=-1) for name, array in result.items()}

        monkeypatch.setattr(candidate, "infer", wrong)
        expected = reference_outputs("digits", "model.fp32.onnx", {"image": digits_images(5)})
        for index in range(5):
            response = await client.post("/v2/models/digits/infer", content=_body(index), headers=JSON)
            label = next(o for o in response.json()["outputs"] if o["name"] == "label")
            assert label["data"] == [int(expected["label"][index])]
        labels = {"model": "digits", "variant": "int8"}
        await _until(lambda: _metric(app, "servometer_shadow_comparisons_total", **labels, result="disagree") == 5)
        assert _metric(app, "servometer_shadow_comparisons_total", **labels, result="agree") == 0


@pytest.mark.parametrize("tolerance", [0.0, 1.0])
async def test_fastest_within_serves_what_the_report_picks(tmp_path, demo_models, tolerance):
    root = _digits_routed(tmp_path, {"policy": "fastest_within", "tolerance": tolerance})
    async with async_app(root, cache_backend="off", report_dir=tmp_path / "reports") as (app, client):
        context: AppContext = app.state.context
        await _until(lambda: context.reports.latest("digits") is not None, timeout=120)  # built at load
        report = context.reports.latest("digits")
        assert report is not None
        expected = report.fastest_within(tolerance)
        served = {
            (await client.post("/v2/models/digits/infer", content=_body(), headers=JSON)).headers["servometer-variant"]
            for _ in range(5)
        }
        assert served == {expected}
        within = [v for v in report.variants if v.quality_loss <= tolerance]
        assert min(within, key=lambda v: (v.batch_1.p50_s, v.name)).name == expected
