"""A real ``servometer serve`` process on a free port, called with httpx and unmodified tritonclient."""

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.helpers import (
    digits_images,
    free_port,
    minilm_tokens,
    reference_outputs,
    running_server,
    v2_json,
    wait_ready,
)

VARIANTS = [
    ("digits", "fp32", "1", "model.fp32.onnx"),
    ("digits", "int8", "2", "model.int8.onnx"),
    ("digits", "torchscript", "3", "model.torchscript.pt"),
    ("minilm-ids", "fp32", "1", "model.fp32.onnx"),
    ("minilm-ids", "int8", "2", "model.int8.onnx"),
    ("digits", "fp32-opt", "4", "model.fp32-opt.onnx"),
    ("digits", "int8-dynamic", "5", "model.int8-dynamic.onnx"),
    ("digits", "fp16", "6", "model.fp16.onnx"),
]


def _inputs(model: str) -> dict[str, np.ndarray]:
    return {"image": digits_images(6)} if model == "digits" else minilm_tokens(4)


@pytest.fixture(scope="module")
def server(demo_models, tmp_path_factory):
    with running_server(demo_models, log=tmp_path_factory.mktemp("server") / "server.log") as address:
        yield address


@pytest.fixture(scope="module")
def client(server):
    client = triton.InferenceServerClient(server)
    yield client
    client.close()


def _tolerance(file: str) -> float:
    """ONNX answers are bit-exact; torch's CPU kernels sum in an order that depends on its thread count, which the
    server chooses from the CPUs it may use (one here) and this process does not."""
    return 1e-5 if file.endswith(".pt") else 0.0


@pytest.mark.parametrize(("model", "variant", "version", "file"), VARIANTS)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_results_equal_the_model_file(client, model, variant, version, file, binary):
    inputs = _inputs(model)
    tensors = []
    for name, array in inputs.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    expected = reference_outputs(model, file, inputs)
    requested = [triton.InferRequestedOutput(name, binary_data=binary) for name in expected]
    for address in (version, variant):
        result = client.infer(model, tensors, model_version=address, outputs=requested)
        assert result.get_response()["model_version"] == version
        for name, want in expected.items():
            np.testing.assert_allclose(result.as_numpy(name), want, rtol=0, atol=_tolerance(file))


@pytest.mark.parametrize(("model", "variant", "version", "file"), VARIANTS)
def test_httpx_json_results_equal_the_model_file(server, model, variant, version, file):
    inputs = _inputs(model)
    body = v2_json(inputs)
    response = httpx.post(f"http://{server}/v2/models/{model}/versions/{variant}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    expected = reference_outputs(model, file, inputs)
    outputs = response.json()["outputs"]
    assert {output["name"] for output in outputs} >= set(expected)
    for output in (output for output in outputs if output["name"] in expected):  # steps' outputs: tests/processing
        want = expected[output["name"]]
        got = np.array(output["data"], dtype=want.dtype).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=_tolerance(file))


def test_default_variant_serves_requests_without_a_version(client):
    images = digits_images(2)
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer("digits", [tensor])
    expected = reference_outputs("digits", "model.fp32.onnx", {"image": images})
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected["probabilities"])
    assert result.get_response()["parameters"]["variant"] == "fp32"


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_and_responses(client, algorithm):
    images = digits_images(3)
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    result = client.infer(
        "digits", [tensor], request_compression_algorithm=algorithm, response_compression_algorithm=algorithm
    )
    expected = reference_outputs("digits", "model.fp32.onnx", {"image": images})
    np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])


def test_tritonclient_reads_metadata_config_health_and_errors(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("minilm-ids", "2")
    assert client.get_model_metadata("minilm-ids")["inputs"][0]["name"] == "input_ids"
    assert client.get_model_config("digits")["max_batch_size"] == 64
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")
    tensor = triton.InferInput("image", [1, 1, 8, 8], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 1, 8, 8)))
    with pytest.raises(InferenceServerException, match="expected datatype FP32, got FP64"):
        client.infer("digits", [tensor])


def test_metrics_are_served_in_prometheus_text_format(server):
    text = httpx.get(f"http://{server}/metrics").text
    assert "# TYPE servometer_requests_total counter" in text
    assert "# TYPE servometer_request_duration_seconds histogram" in text
    assert "process_cpu_seconds_total" in text


def test_serve_takes_its_settings_from_environment_variables(demo_models, tmp_path):
    port = free_port()
    env = {**os.environ, "SERVOMETER_PORT": str(port), "SERVOMETER_MODELS": str(demo_models), "SERVOMETER_WORKERS": "2"}
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--no-build"], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_ready(f"127.0.0.1:{port}", process, log)
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/v2/models/digits").status_code == 200
        workers = [line for line in log.read_text().splitlines() if "Started server process" in line]
        assert len(workers) == 2, log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
