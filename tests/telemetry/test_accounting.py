"""After a known sequence of requests, every counter and histogram count equals what was sent."""

import orjson

from tests.api.conftest import async_app
from tests.helpers import digits_images

JSON = {"content-type": "application/json"}


def _body(index: int, samples: int = 1) -> bytes:
    images = digits_images(16)[index : index + samples]
    tensor = {"name": "image", "datatype": "FP32", "shape": list(images.shape), "data": images.reshape(-1).tolist()}
    return orjson.dumps({"inputs": [tensor]})


async def test_counters_and_statistics_add_up_after_a_known_sequence(demo_models):
    async with async_app(demo_models, price_per_hour=3.6) as (app, client):
        sample = app.state.context.metrics.sample_value
        digits = {"model": "digits", "variant": "fp32"}
        for index in range(3):  # three distinct requests of 2 samples each: computed
            assert (
                await client.post("/v2/models/digits/infer", content=_body(index, 2), headers=JSON)
            ).status_code == 200
        for _ in range(20):  # the same request again until it is served from the cache
            response = await client.post("/v2/models/digits/infer", content=_body(0, 2), headers=JSON)
            if response.headers["servometer-cache"] == "hit":
                break
        hits = sample("servometer_cache_lookups_total", {"model": "digits", "backend": "memory", "result": "hit"})
        assert hits == 1
        repeats = (
            sample("servometer_cache_lookups_total", {"model": "digits", "backend": "memory", "result": "miss"}) - 3
        )
        bad = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0]}]}
        assert (
            await client.post("/v2/models/digits/infer", content=orjson.dumps(bad), headers=JSON)
        ).status_code == 400

        computed = 3 + repeats
        answered = computed + 1
        assert sample("servometer_requests_total", {**digits, "outcome": "success"}) == answered
        assert sample("servometer_requests_total", {**digits, "outcome": "client_error"}) == 1
        assert sample("servometer_request_duration_seconds_count", digits) == answered + 1
        assert sample("servometer_inferences_total", digits) == 2 * computed
        assert sample("servometer_queue_duration_seconds_count", digits) == computed
        assert sample("servometer_batch_size_sum", digits) == 2 * computed
        assert sample("servometer_requests_in_flight", digits) == 0
        compute_seconds = sample("servometer_compute_duration_seconds_sum", digits)
        # The labels step after the model costs like compute.
        for stage in ("before", "after"):
            compute_seconds += sample("servometer_process_duration_seconds_sum", {**digits, "stage": stage})
        # price 3.6 $/h = 0.001 $ per compute second
        assert abs(sample("servometer_cost_dollars_total", digits) - compute_seconds * 0.001) < 1e-12

        stats = (await client.get("/v2/models/digits/versions/1/stats")).json()["model_stats"]
        (entry,) = stats
        assert (entry["name"], entry["version"]) == ("digits", "1")
        assert entry["inference_count"] == 2 * computed
        assert entry["execution_count"] == sample("servometer_batch_size_count", digits)
        parts = entry["inference_stats"]
        assert parts["success"]["count"] == answered
        assert parts["fail"]["count"] == 1
        assert parts["cache_hit"]["count"] == 1
        assert parts["cache_miss"]["count"] == computed
        assert parts["queue"]["count"] == answered  # as Triton: queue counts cache hits too
        assert parts["compute_infer"]["count"] == computed
        assert all(parts[p]["ns"] > 0 for p in ("success", "queue", "compute_infer", "cache_hit"))


async def test_stats_list_every_variant_and_unknown_models_are_404(demo_models):
    async with async_app(demo_models) as (_, client):
        everything = (await client.get("/v2/models/stats")).json()["model_stats"]
        assert {(s["name"], s["version"]) for s in everything} >= {("digits", "1"), ("digits", "3"), ("minilm", "2")}
        assert len((await client.get("/v2/models/digits/stats")).json()["model_stats"]) == 6
        assert (await client.get("/v2/models/nope/stats")).status_code == 404


async def test_model_info_load_time_prices_and_objectives_are_exported(tmp_path, demo_models):
    from tests.helpers import copy_model

    folder = copy_model("digits", tmp_path)
    manifest = (folder / "model.yaml").read_text()
    (folder / "model.yaml").write_text(
        manifest
        + "objectives: {latency_p99_s: 0.05, error_ratio: 0.01, cost_per_1k_inferences: 0.02, min_throughput: 5}\n"
    )
    async with async_app(tmp_path, price_per_hour=1.5, gpu_price_per_hour=2.5) as (app, _):
        sample = app.state.context.metrics.sample_value
        info = [
            s.labels
            for family in app.state.context.metrics.registry.collect()
            for s in family.samples
            if s.name == "servometer_model_info" and s.labels["variant"] == "int8"
        ]
        (labels,) = info
        assert (labels["runtime"], labels["precision"], labels["device"]) == ("onnxruntime_onnx", "int8", "cpu")
        assert len(labels["digest"]) == 16
        assert sample("servometer_model_load_duration_seconds", {"model": "digits", "variant": "int8"}) > 0
        assert sample("servometer_price_per_hour_dollars", {"resource": "machine"}) == 1.5
        assert sample("servometer_price_per_hour_dollars", {"resource": "gpu"}) == 2.5
        assert sample("servometer_objective_latency_p99_seconds", {"model": "digits"}) == 0.05
        assert sample("servometer_objective_error_ratio", {"model": "digits"}) == 0.01
        assert sample("servometer_objective_cost_per_1k_inferences_dollars", {"model": "digits"}) == 0.02
        assert sample("servometer_objective_min_throughput_per_second", {"model": "digits"}) == 5


async def test_latency_buckets_are_configurable(demo_models):
    async with async_app(demo_models, latency_buckets=[0.001, 0.01, 1.0]) as (app, client):
        await client.post("/v2/models/digits/infer", content=_body(0), headers=JSON)
        text = (await client.get("/metrics")).text
        bounds = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
                  if line.startswith("servometer_request_duration_seconds_bucket{") and 'variant="fp32"' in line
                  and 'model="digits"' in line]  # fmt: skip
        assert bounds == ["0.001", "0.01", "1.0", "+Inf"]


def test_latency_buckets_must_increase():
    import pytest
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="strictly increasing"):
        Settings(latency_buckets=[0.1, 0.01])


def test_cost_and_gpu_seconds_follow_compute_time_and_the_device():
    import pytest

    from app.telemetry.metrics import Metrics

    metrics = Metrics()
    on_cpu, on_gpu = metrics.for_variant("m", "cpu"), metrics.for_variant("m", "gpu")
    on_cpu.set_pricing(False, 1.0 / 3600)  # $1/h machine
    on_gpu.set_pricing(True, 4.0 / 3600)  # $1/h machine + $3/h GPU
    on_cpu.computed(samples=8, requests=4, seconds=36.0, input_s=0.0, output_s=0.0)
    on_gpu.computed(samples=8, requests=4, seconds=9.0, input_s=0.0, output_s=0.0)
    assert metrics.sample_value("servometer_cost_dollars_total", {"model": "m", "variant": "cpu"}) == pytest.approx(
        0.01
    )
    assert metrics.sample_value("servometer_cost_dollars_total", {"model": "m", "variant": "gpu"}) == pytest.approx(
        0.01
    )
    assert metrics.sample_value("servometer_gpu_busy_seconds_total", {"model": "m", "variant": "gpu"}) == 9.0
    assert metrics.sample_value("servometer_gpu_busy_seconds_total", {"model": "m", "variant": "cpu"}) == 0.0
    assert metrics.sample_value("servometer_inferences_total", {"model": "m", "variant": "gpu"}) == 8
