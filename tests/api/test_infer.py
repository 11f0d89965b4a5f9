import gzip
import zlib

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import registry_of, started_client
from tests.helpers import digits_images, reference_outputs

JSON = {"content-type": "application/json"}


def _digits_body(images: np.ndarray, **extra: object) -> dict:
    return {
        "inputs": [
            {"name": "image", "datatype": "FP32", "shape": list(images.shape), "data": images.reshape(-1).tolist()}
        ],
        **extra,
    }


def _post(client, path: str, document: dict, headers: dict | None = None):
    return client.post(path, content=orjson.dumps(document), headers={**JSON, **(headers or {})})


def test_json_inference_equals_the_model_file_and_names_the_variant(client):
    images = digits_images(5)
    response = _post(client, "/v2/models/digits/infer", _digits_body(images, id="req-7"))
    assert response.status_code == 200
    document = response.json()
    assert (document["model_name"], document["model_version"], document["id"]) == ("digits", "1", "req-7")
    assert response.headers["servometer-variant"] == "fp32"
    assert document["parameters"]["variant"] == "fp32"
    assert len(document["parameters"]["response_id"].split(",")) == 5  # digits is monitored: one id per sample
    expected = reference_outputs("digits", "model.fp32.onnx", {"image": images})
    # The model file's own outputs; the class names its labels step adds are tested in tests/processing.
    assert {output["name"] for output in document["outputs"]} >= set(expected)
    for output in (output for output in document["outputs"] if output["name"] in expected):
        want = expected[output["name"]]
        assert output["shape"] == list(want.shape)
        np.testing.assert_array_equal(np.array(output["data"], dtype=want.dtype).reshape(want.shape), want)


def test_only_requested_outputs_come_back_in_the_requested_order(client):
    body = _digits_body(digits_images(2), outputs=[{"name": "label"}, {"name": "logits"}])
    outputs = _post(client, "/v2/models/digits/infer", body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["label", "logits"]
    assert outputs[0]["datatype"] == "INT64"


def test_binary_output_requested_by_parameter(client):
    images = digits_images(3)
    body = _digits_body(images, outputs=[{"name": "label", "parameters": {"binary_data": True}}])
    response = _post(client, "/v2/models/digits/versions/int8/infer", body)
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 24
    expected = reference_outputs("digits", "model.int8.onnx", {"image": images})["label"]
    np.testing.assert_array_equal(np.frombuffer(response.content[length:], "<i8"), expected)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_request_and_response(client, encoding):
    raw = orjson.dumps(_digits_body(digits_images(1)))
    packed = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    response = client.post(
        "/v2/models/digits/infer",
        content=packed,
        headers={**JSON, "content-encoding": encoding, "accept-encoding": encoding},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    assert response.json()["outputs"][2]["name"] == "label"


@pytest.mark.parametrize(
    ("path", "document", "status", "message"),
    [
        ("/v2/models/nope/infer", {}, 404, "unknown model 'nope'"),
        ("/v2/models/digits/versions/fp64/infer", {}, 404, "no version or variant 'fp64'"),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "img", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 64}]},
            400,
            "takes inputs ['image']; the request sent ['img']",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "image", "datatype": "INT32", "shape": [1, 1, 8, 8], "data": [0] * 64}]},
            400,
            "input 'image': expected datatype FP32, got INT32",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}]},
            400,
            "input 'image': expected shape [-1, 1, 8, 8], got [1, 64]",
        ),
        (
            "/v2/models/digits/infer",
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 63}]},
            400,
            "input 'image': shape [1, 1, 8, 8] needs 64 elements, 'data' has 63",
        ),
    ],
)
def test_bad_requests_get_the_right_status_and_a_message_naming_the_problem(client, path, document, status, message):
    response = _post(client, path, document)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_wrong_content_type_is_415(client):
    response = client.post(
        "/v2/models/digits/infer", content=b"x=1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_a_response_over_the_configured_limit_is_refused_before_it_is_encoded(demo_models):
    # 64 samples of 10 logits and 10 probabilities as JSON: ~30 KB estimated, over a 16 KiB limit.
    with started_client(demo_models, max_response_bytes=16 * 1024, cache_backend="off") as client:
        body = _digits_body(digits_images(64))
        refused = _post(client, "/v2/models/digits/infer", body)
        assert refused.status_code == 400
        assert "over the 16384-byte limit (max_response_bytes)" in refused.json()["error"]
        # As binary tensors the same answer is 4x smaller, and fits.
        binary = {**body, "parameters": {"binary_data_output": True}}
        assert client.post("/v2/models/digits/infer", json=binary).status_code == 200
        assert _post(client, "/v2/models/digits/infer", _digits_body(digits_images(8))).status_code == 200


def test_body_over_the_configured_limit_is_413_both_declared_and_compressed(demo_models):
    with started_client(demo_models, max_request_bytes=4096) as client:
        big = orjson.dumps(_digits_body(np.zeros((64, 1, 8, 8), np.float32)))
        assert len(big) > 4096
        assert _post(client, "/v2/models/digits/infer", orjson.loads(big)).status_code == 413
        bomb = gzip.compress(big)
        assert len(bomb) < 4096
        response = client.post("/v2/models/digits/infer", content=bomb, headers={**JSON, "content-encoding": "gzip"})
        assert response.status_code == 413
        assert "limit" in response.json()["error"]


def test_a_model_that_raises_is_a_500_naming_the_variant_and_the_server_keeps_serving(demo_models, monkeypatch):
    with started_client(demo_models) as client:
        variant = registry_of(client).resolve("digits", "int8")

        def broken(*_: object) -> dict:
            raise RuntimeError("CUDA error: device lost")

        monkeypatch.setattr(variant.runtime, "infer", broken)
        response = _post(client, "/v2/models/digits/versions/int8/infer", _digits_body(digits_images(1)))
        assert response.status_code == 500
        # The model's own message goes to the log: clients learn which variant failed, not its internals.
        error = response.json()["error"]
        assert error == "model 'digits' variant 'int8' failed on this request (the server's log has the error)"
        assert _post(client, "/v2/models/digits/infer", _digits_body(digits_images(1))).status_code == 200


def _samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
        if sample.name.startswith("servometer_")
    }


def _requests(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], variant: str, outcome: str) -> float:
    return samples[("servometer_requests_total", (("model", "digits"), ("outcome", outcome), ("variant", variant)))]


def test_metrics_count_every_request_by_model_variant_and_outcome(demo_models):
    with started_client(demo_models) as client:
        good = _digits_body(digits_images(1))
        bad = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 3}]}
        for _ in range(3):
            _post(client, "/v2/models/digits/infer", good)
        _post(client, "/v2/models/digits/versions/int8/infer", good)
        _post(client, "/v2/models/digits/infer", bad)
        _post(client, "/v2/models/nope/infer", good)
        samples = _samples(client)
        assert _requests(samples, "fp32", "success") == 3
        assert _requests(samples, "fp32", "client_error") == 1
        assert _requests(samples, "int8", "success") == 1
        assert _requests(samples, "torchscript", "success") == 0
        count = samples[("servometer_request_duration_seconds_count", (("model", "digits"), ("variant", "fp32")))]
        assert count == 4
        assert samples[("servometer_model_ready", (("model", "minilm"), ("variant", "int8")))] == 1
        assert not any(("model", "nope") in labels for _, labels in samples)
