"""Text in, embeddings out, over HTTP: the OpenAI embeddings API through the real, unmodified ``openai`` client, and
the V2 route with a BYTES text input, against a real server; every bad request a 4xx in the route's error shape."""

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import yaml

from tests.helpers import copy_model, running_server

TEXTS = ["A model server turns trained weights into an answer.", "Hi", "Ünïcödé café in Zürich " * 80]


@pytest.fixture(scope="module")
def server(demo_models, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("embeddings")
    repository = root / "models"
    minilm = copy_model("minilm", repository)
    manifest = yaml.safe_load((minilm / "model.yaml").read_text())
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] in ("fp32", "int8")]  # starts faster
    (minilm / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    copy_model("digits", repository)
    with running_server(repository, log=root / "servometer.log") as address:
        yield address


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{server}/v1", api_key="unused", max_retries=0)


def _v2(server: str, texts: list[str], variant: str = "fp32") -> dict[str, np.ndarray]:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    response = httpx.post(f"http://{server}/v2/models/minilm/versions/{variant}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def test_the_openai_client_gets_the_embeddings_the_v2_route_gives_for_the_same_text(server, client):
    created = client.embeddings.create(model="minilm", input=TEXTS)  # the client asks for base64 by default
    assert [item.index for item in created.data] == [0, 1, 2]
    assert created.model == "minilm"
    v2 = _v2(server, TEXTS)
    vectors = np.array([item.embedding for item in created.data])
    np.testing.assert_allclose(vectors, v2["sentence_embedding"], atol=1e-6)
    assert created.usage.prompt_tokens == created.usage.total_tokens == int(v2["token_count"].sum())
    assert v2["token_count"][2] == 256  # the long text cut to the model's 256 word pieces
    as_floats = client.embeddings.create(model="minilm", input=TEXTS[1], encoding_format="float")
    np.testing.assert_allclose(as_floats.data[0].embedding, vectors[1], atol=1e-6)


def test_base64_is_little_endian_float32_as_openai_sends_it(server):
    response = httpx.post(f"http://{server}/v1/embeddings", timeout=30,
                          json={"model": "minilm", "input": "Hi", "encoding_format": "base64"})  # fmt: skip
    encoded = response.json()["data"][0]["embedding"]
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    np.testing.assert_allclose(vector, _v2(server, ["Hi"])["sentence_embedding"][0], atol=1e-6)


def test_more_texts_than_a_batch_holds_are_answered_in_order(client):
    texts = [f"sentence number {i} about serving models" for i in range(70)]  # over max_batch_size 32
    created = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert [item.index for item in created.data] == list(range(70))
    alone = client.embeddings.create(model="minilm", input=texts[69], encoding_format="float")
    np.testing.assert_allclose(created.data[69].embedding, alone.data[0].embedding, atol=2e-6)


def test_the_models_list_names_every_model(client):
    assert {model.id for model in client.models.list()} == {"minilm", "digits"}
    assert client.models.retrieve("minilm").owned_by == "servometer"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "minilm", "input": ""}, "input", "empty texts"),
        ({"model": "minilm", "input": ["fine", "  "]}, "input", "text 1 is empty"),
        ({"model": "minilm", "input": []}, "input", "empty list"),
        ({"model": "minilm", "input": [[101, 102]]}, "input", "token arrays are not accepted"),
        ({"model": "minilm", "input": ["x"] * 2049}, "input", "at most 2048"),
        ({"model": "minilm", "input": 5}, "input", "valid string"),
        ({"model": "minilm", "input": "x", "dimensions": 64}, "dimensions", "cannot shorten its embeddings"),
        ({"model": "minilm", "input": "x", "encoding_format": "hex"}, "encoding_format", "float"),
        ({"model": "digits", "input": "x"}, "model", "does not take text"),
        ({"input": "x"}, "model", "Field required"),
    ],
)
def test_bad_requests_get_a_400_in_openais_error_shape(server, body, param, message):
    response = httpx.post(f"http://{server}/v1/embeddings", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert message in error["message"]


def test_an_unknown_model_and_a_body_that_is_not_utf8_are_4xx_too(server, client):
    with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
        client.embeddings.create(model="nope", input="x")
    response = httpx.post(f"http://{server}/v1/embeddings", content=b'{"model": "minilm", "input": "\xff\xfe"}',
                          headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert 400 <= response.status_code < 500
    assert "message" in response.json()["error"]


def test_v2_text_that_is_not_utf8_is_a_400_naming_the_element(server):
    text = b"\xff\xfe not text"
    header = b'{"inputs":[{"name":"text","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":%d}}]}' % (
        8 + 2 + len(text)
    )
    body = header + len(b"ok").to_bytes(4, "little") + b"ok" + len(text).to_bytes(4, "little") + text
    response = httpx.post(f"http://{server}/v2/models/minilm/infer", content=body, timeout=30,
                          headers={"inference-header-content-length": str(len(header))})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == "input 'text': element 1 is not UTF-8 text (byte 0 is invalid)"


def test_the_metrics_show_the_tokenize_stage_and_the_padding_waste(server):
    _v2(server, TEXTS)
    metrics = httpx.get(f"http://{server}/metrics", timeout=30).text
    labels = 'model="minilm",stage="before",variant="fp32"'
    assert f"servometer_process_duration_seconds_count{{{labels}}}" in metrics
    sent = _sample(metrics, 'servometer_tokens_total{kind="sent",model="minilm",variant="fp32"}')
    computed = _sample(metrics, 'servometer_tokens_total{kind="computed",model="minilm",variant="fp32"}')
    assert 0 < sent <= computed


def _sample(metrics: str, series: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(series))
    return float(line.rsplit(" ", 1)[1])


def test_v2_can_ask_for_the_token_count_alone(server):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Servometer serves models fast."]}],
            "outputs": [{"name": "token_count"}]}  # fmt: skip
    response = httpx.post(f"http://{server}/v2/models/minilm/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == [{"name": "token_count", "datatype": "INT64", "shape": [1], "data": [9]}]
