"""A real ``servometer serve`` with gRPC on a free port, called with unmodified tritonclient.grpc (sync and asyncio)
and grpcio's own stubs: answers equal the model files and the HTTP route's; bad input gets the right status code
and the server keeps serving."""

import asyncio
import socket
import subprocess
import sys
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.e2e.test_server import VARIANTS, _inputs, _tolerance
from tests.helpers import digits_images, free_port, reference_outputs, running_server

KEY = "grpc-test-key-0123456789"
ADMIN = "grpc-admin-key-0123456789"


@pytest.fixture(scope="module")
def servers(demo_models, tmp_path_factory):
    """``(http address, grpc address)`` of one server serving both."""
    port = free_port()
    log = tmp_path_factory.mktemp("grpc") / "server.log"
    with running_server(demo_models, "--grpc-port", str(port), log=log) as address:
        yield address, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(servers):
    client = triton.InferenceServerClient(servers[1])
    yield client
    client.close()


def _triton_inputs(inputs: dict[str, np.ndarray]) -> list[triton.InferInput]:
    tensors = []
    for name, array in inputs.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


@pytest.mark.parametrize(("model", "variant", "version", "file"), VARIANTS)
def test_every_variant_answers_over_grpc_as_its_model_file(client, model, variant, version, file):
    inputs = _inputs(model)
    expected = reference_outputs(model, file, inputs)
    requested = [triton.InferRequestedOutput(name) for name in expected]
    for address in (version, variant):
        result = client.infer(model, _triton_inputs(inputs), model_version=address, outputs=requested)
        assert result.get_response().model_version == version
        for name, want in expected.items():
            np.testing.assert_allclose(result.as_numpy(name), want, rtol=0, atol=_tolerance(file))


@pytest.mark.parametrize("variant", ["fp32", "int8", "fp32-opt", "int8-dynamic", "fp16"])
def test_text_over_grpc_gets_the_embeddings_and_labels_the_http_route_gives(servers, client, variant):
    texts = np.array([b"A short one.", "Ünïcödé text, somewhat longer than the first.".encode()], dtype=object)
    text = triton.InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(texts)
    result = client.infer("minilm", [text], model_version=variant)
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [t.decode() for t in texts]}]}
    http = httpx.post(f"http://{servers[0]}/v2/models/minilm/versions/{variant}/infer", json=body, timeout=30).json()
    by_name = {output["name"]: output for output in http["outputs"]}
    np.testing.assert_array_equal(
        result.as_numpy("sentence_embedding"),
        np.array(by_name["sentence_embedding"]["data"], np.float32).reshape(2, 384),
    )
    assert result.as_numpy("token_count").tolist() == by_name["token_count"]["data"]
    image = triton.InferInput("image", [2, 1, 8, 8], "FP32")
    image.set_data_from_numpy(digits_images(2))
    labels = client.infer("digits", [image], outputs=[triton.InferRequestedOutput("class_name")])
    assert labels.as_numpy("class_name").tolist() == [b"seven", b"six"]


def test_typed_contents_answer_as_raw_contents_do(servers):
    """Clients other than tritonclient often fill InferTensorContents instead of raw_input_contents."""
    images = digits_images(3)
    request = service_pb2.ModelInferRequest(model_name="digits", model_version="fp32")
    tensor = request.inputs.add(name="image", datatype="FP32", shape=list(images.shape))
    tensor.contents.fp32_contents.extend(images.reshape(-1).tolist())
    with grpc.insecure_channel(servers[1]) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    names = [output.name for output in response.outputs]
    logits = np.frombuffer(response.raw_output_contents[names.index("logits")], np.float32).reshape(3, 10)
    np.testing.assert_array_equal(logits, reference_outputs("digits", "model.fp32.onnx", {"image": images})["logits"])


async def test_the_asyncio_client_is_answered_concurrently(servers):
    client = triton_aio.InferenceServerClient(servers[1])
    try:
        images = digits_images(8)

        async def one(index: int) -> np.ndarray:
            tensor = triton_aio.InferInput("image", [1, 1, 8, 8], "FP32")
            tensor.set_data_from_numpy(images[index : index + 1])
            result = await client.infer("digits", [tensor], model_version="fp32")
            logits: np.ndarray = result.as_numpy("logits")
            return logits

        answers = await asyncio.gather(*(one(index) for index in range(8)))
        expected = reference_outputs("digits", "model.fp32.onnx", {"image": images})["logits"]
        np.testing.assert_array_equal(np.concatenate(answers), expected)
        assert await client.is_server_ready()
    finally:
        await client.close()


def test_metadata_config_and_statistics_are_what_perf_analyzer_reads(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "fp16")
    assert set(client.get_server_metadata().extensions) >= {"binary_tensor_data", "model_configuration"}
    metadata = client.get_model_metadata("digits", as_json=True)
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": ["-1", "1", "8", "8"]}]
    assert metadata["versions"] == ["1", "2", "3", "4", "5", "6"]
    config = client.get_model_config("digits", "int8", as_json=True)["config"]
    assert config["max_batch_size"] == 64
    assert config["input"][0]["dims"] == ["1", "8", "8"]
    assert config["parameters"]["variant"]["string_value"] == "int8"
    client.infer("digits", _triton_inputs({"image": digits_images(1)}), model_version="1")
    stats = client.get_inference_statistics("digits", "1", as_json=True)["model_stats"]
    assert [entry["version"] for entry in stats] == ["1"]
    assert int(stats[0]["inference_stats"]["success"]["count"]) >= 1


def _status(error: InferenceServerException) -> str:
    return str(error.status())


# Zeros of the right form stand in for images: collected before the demo models (and their images) are built.
IMAGE = np.zeros((1, 1, 8, 8), np.float32)
BAD: dict[str, tuple[str, dict[str, np.ndarray], str, str, str]] = {
    "unknown model": ("nope", {"image": IMAGE}, "", "StatusCode.NOT_FOUND", "unknown model 'nope'"),
    "unknown version": ("digits", {"image": IMAGE}, "9", "StatusCode.NOT_FOUND", "version"),
    "wrong input name": ("digits", {"picture": IMAGE}, "", "StatusCode.INVALID_ARGUMENT", "picture"),
    "wrong shape": ("digits", {"image": np.zeros((1, 64), np.float32)}, "", "StatusCode.INVALID_ARGUMENT", "shape"),
    "wrong datatype": ("digits", {"image": IMAGE.astype(np.int64)}, "", "StatusCode.INVALID_ARGUMENT", "INT64"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_gets_its_status_code_and_the_server_keeps_serving(client, case):
    model, inputs, version, status, words = BAD[case]
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, _triton_inputs(inputs), model_version=version)
    assert _status(raised.value) == status
    assert words in raised.value.message()
    assert client.infer("digits", _triton_inputs({"image": digits_images(1)})).as_numpy("logits").shape == (1, 10)


def _raw_request(raw: list[bytes], shape: list[int], datatype: str = "FP32") -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="digits", model_version="fp32")
    request.inputs.add(name="image", datatype=datatype, shape=shape)
    request.raw_input_contents.extend(raw)
    return request


LYING = {
    "raw bytes shorter than the shape": (_raw_request([b"\0" * 100], [1, 1, 8, 8]), "needs 256 bytes"),
    "raw bytes longer than the shape": (_raw_request([b"\0" * 512], [1, 1, 8, 8]), "needs 256 bytes"),
    "two raw tensors for one input": (_raw_request([b"\0" * 256, b"\0" * 4], [1, 1, 8, 8]), "raw_input_contents"),
    "a negative dimension": (_raw_request([b"\0" * 256], [1, -1, 8, 8]), "negative"),
    "an unknown datatype": (_raw_request([b"\0" * 256], [1, 1, 8, 8], "FP8"), "unknown datatype"),
    "no inputs": (service_pb2.ModelInferRequest(model_name="digits"), "no inputs"),
}


@pytest.mark.parametrize("case", list(LYING), ids=list(LYING))
def test_lying_messages_are_invalid_argument_naming_what_is_wrong(servers, case):
    request, words = LYING[case]
    with grpc.insecure_channel(servers[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=30)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert words in (raised.value.details() or "")
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=30).live


def test_health_service_says_serving_and_refuses_unknown_services(servers):
    with grpc.insecure_channel(servers[1]) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # its stubs' types leave the methods out
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="something.Else"), timeout=30)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_an_unimplemented_rpc_says_so(servers):
    with grpc.insecure_channel(servers[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.TraceSetting(service_pb2.TraceSettingRequest(), timeout=30)
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_grpc_calls_are_counted_apart_and_in_the_request_metrics(servers, client):
    def value(text: str, prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    ok = 'servometer_grpc_calls_total{code="OK",method="ModelInfer"}'
    requests = 'servometer_requests_total{model="digits",outcome="success",variant="fp32-opt"}'
    before = httpx.get(f"http://{servers[0]}/metrics", timeout=10).text
    client.infer("digits", _triton_inputs({"image": digits_images(2)}), model_version="fp32-opt")
    after = httpx.get(f"http://{servers[0]}/metrics", timeout=10).text
    assert value(after, ok) == value(before, ok) + 1
    assert value(after, requests) == value(before, requests) + 1


@pytest.fixture(scope="module")
def guarded(demo_models, tmp_path_factory):
    """A server with an API key and the management API on: its gRPC address."""
    port = free_port()
    env = {"SERVOMETER_API_KEYS": f'["{KEY}"]', "SERVOMETER_MANAGEMENT_API_KEY": ADMIN}
    log = tmp_path_factory.mktemp("grpc-keys") / "server.log"
    with running_server(demo_models, "--grpc-port", str(port), env=env, log=log):
        yield f"127.0.0.1:{port}"


def test_keys_guard_grpc_as_they_guard_http(guarded):
    image = _triton_inputs({"image": digits_images(1)})
    client = triton.InferenceServerClient(guarded)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        for headers, status in (({}, "UNAUTHENTICATED"), ({"authorization": "Bearer wrong"}, "UNAUTHENTICATED")):
            with pytest.raises(InferenceServerException) as raised:
                client.infer("digits", image, headers=headers)
            assert _status(raised.value) == f"StatusCode.{status}"
        keyed = {"authorization": f"Bearer {KEY}"}
        assert client.infer("digits", image, headers=keyed).as_numpy("logits").shape == (1, 10)
        with pytest.raises(InferenceServerException) as raised:
            client.get_model_repository_index(headers=keyed)
        assert _status(raised.value) == "StatusCode.PERMISSION_DENIED"  # a known key, for other calls
        index = client.get_model_repository_index(headers={"authorization": f"Bearer {ADMIN}"}, as_json=True)
        assert {"digits", "minilm"} <= {model["name"] for model in index["models"]}
    finally:
        client.close()


def test_a_message_over_the_limit_is_resource_exhausted(demo_models, tmp_path):
    port = free_port()
    env = {"SERVOMETER_GRPC_MAX_MESSAGE_BYTES": "4096"}
    with running_server(demo_models, "--grpc-port", str(port), env=env, log=tmp_path / "server.log"):
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            with pytest.raises(InferenceServerException) as raised:
                client.infer("digits", _triton_inputs({"image": digits_images(32)}))  # 8 KiB of pixels
            assert _status(raised.value) == "StatusCode.RESOURCE_EXHAUSTED"
            assert client.infer("digits", _triton_inputs({"image": digits_images(2)})).as_numpy("logits").shape == (
                2,
                10,
            )
        finally:
            client.close()


def test_a_client_deadline_shorter_than_the_work_is_deadline_exceeded(client):
    with pytest.raises(InferenceServerException) as raised:
        client.infer("minilm-ids", _triton_inputs(_inputs("minilm-ids")), client_timeout=0.000_001)
    assert _status(raised.value) == "StatusCode.DEADLINE_EXCEEDED"
    assert client.is_server_ready()


def test_a_grpc_port_held_by_another_program_stops_the_start_naming_the_setting(demo_models, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = [sys.executable, "-m", "app", "serve", "--no-build", "--models", str(demo_models),
                   "--port", str(free_port()), "--grpc-port", str(port)]  # fmt: skip
        ended = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert ended.returncode != 0
    assert f"cannot serve gRPC on 127.0.0.1:{port} (SERVOMETER_GRPC_PORT)" in ended.stderr
