"""Bad input against a real server: every case a 4xx naming the problem, the server keeps serving, and its
memory stays flat over repeated rounds (huge declared shapes are refused before anything is allocated)."""

import json
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers import resident_bytes, server_process

LIMIT = 1 << 20  # a 1 MiB body limit for the oversize cases
IMAGE = [float(v) for v in range(64)]


def _json(inputs: object, **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def _image(**changes: object) -> dict[str, object]:
    return {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": IMAGE, **changes}


def _binary(header_inputs: list[Any], payload: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": header_inputs}).encode()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))}
    return header + payload, headers


def _tokens(shape: list[int], ids: list[int]) -> list[dict[str, object]]:
    return [
        {"name": "input_ids", "datatype": "INT64", "shape": shape, "data": ids},
        {"name": "attention_mask", "datatype": "INT64", "shape": shape, "data": [1] * len(ids)},
    ]


JSON = {"content-type": "application/json"}
NAN_IMAGE = np.full(64, np.nan, dtype=np.float32).tobytes()
BINARY_IMAGE = {"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "parameters": {"binary_data_size": 256}}

# (case, path, body, headers, expected status, words the error must contain)
CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [  # fmt: skip
    ("malformed JSON", "digits", b'{"inputs": [', JSON, 400, "malformed"),
    ("wrong content type", "digits", _json([_image()]), {"content-type": "text/plain"}, 415, "Content-Type"),
    ("no inputs", "digits", _json([]), JSON, 400, "inputs"),
    (
        "missing input",
        "minilm-ids",
        _json([{"name": "input_ids", "datatype": "INT64", "shape": [1, 2], "data": [1, 2]}]),
        JSON,
        400,
        "sent ['input_ids'] (missing ['attention_mask'])",
    ),
    ("extra input", "digits", _json([_image(), _image(name="extra")]), JSON, 400, "extra"),
    (
        "wrong datatype",
        "digits",
        _json([_image(datatype="INT32", data=list(range(64)))]),
        JSON,
        400,
        "expected datatype FP32",
    ),
    ("shape and data disagree", "digits", _json([_image(shape=[1, 1, 8, 9])]), JSON, 400, "shape"),
    ("negative dimension", "digits", _json([_image(shape=[-1, 1, 8, 8])]), JSON, 400, "shape"),
    ("gigabyte shape, JSON", "digits", _json([_image(shape=[100_000_000, 1, 8, 8])]), JSON, 400, "shape"),
    ("strings for numbers", "digits", _json([_image(data=["a"] * 64)]), JSON, 400, "image"),
    ("deep JSON", "digits", b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, 400, "JSON"),
    ("oversized body", "digits", _json([_image(data=[0.0] * 300_000)]), JSON, 413, "limit"),
    ("unknown model", "nope", _json([_image()]), JSON, 404, "unknown model 'nope'"),
    ("unknown variant", "digits/versions/99", _json([_image()]), JSON, 404, "99"),
    ("unknown output", "digits", _json([_image()], outputs=[{"name": "secret"}]), JSON, 400, "no output 'secret'"),
    ("zero samples", "digits", _json([_image(shape=[0, 1, 8, 8], data=[])]), JSON, 400, "dimension 0 is 0"),
    ("zero sentences", "minilm-ids", _json(_tokens([0, 4], [])), JSON, 400, "dimension 0 is 0"),
    ("zero-length sentences", "minilm-ids", _json(_tokens([2, 0], [])), JSON, 400, "dimension 1 is 0"),
    (
        "over max_batch_size",
        "digits",
        _json([_image(shape=[65, 1, 8, 8], data=IMAGE * 65)]),
        JSON,
        400,
        "batch size 65 exceeds model 'digits' max_batch_size 64",
    ),
    (
        "token id beyond the vocabulary",
        "minilm-ids",
        _json(_tokens([1, 3], [101, 30522, 102])),
        JSON,
        400,
        "input 'input_ids': values must lie in [0, 30521]",
    ),
    ("negative token id", "minilm-ids", _json(_tokens([1, 3], [101, -5, 102])), JSON, 400, "input 'input_ids'"),
    ("dot-dot model name", "..%2F..%2Fetc%2Fpasswd", _json([_image()]), JSON, 404, ""),
    ("encoded traversal", "%2e%2e", _json([_image()]), JSON, 404, ""),
]
BINARY_CASES = [
    ("header length beyond the body", [BINARY_IMAGE], b"\0" * 256, {"inference-header-content-length": "99999"},
     400, "Inference-Header-Content-Length"),
    ("binary size beyond the data", [BINARY_IMAGE], b"\0" * 16, {}, 400, "binary_data_size"),
    ("gigabyte shape, binary", [{**BINARY_IMAGE, "shape": [1 << 30, 1, 8, 8]}], b"\0" * 256, {}, 400, "shape"),
    ("NaN where the model forbids it", [BINARY_IMAGE], NAN_IMAGE, {}, 400, "NaN or Inf"),
]  # fmt: skip


def _requests() -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    binary = []
    for case, inputs, payload, extra, status, words in BINARY_CASES:
        body, headers = _binary(inputs, payload)
        binary.append((case, "digits", body, {**headers, **extra}, status, words))
    return CASES + binary


@pytest.fixture(scope="module")
def server(demo_models, tmp_path_factory):
    log = tmp_path_factory.mktemp("bad-input") / "server.log"
    with server_process(demo_models, env={"SERVOMETER_MAX_REQUEST_BYTES": str(LIMIT)}, log=log) as running:
        yield running


@pytest.mark.parametrize("case", _requests(), ids=[case[0] for case in _requests()])
def test_bad_input_gets_a_4xx_naming_the_problem_and_the_server_keeps_serving(server, case):
    _, address = server
    name, path, body, headers, status, words = case
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        response = client.post(f"/v2/models/{path}/infer", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
        good = client.post("/v2/models/digits/infer", content=_json([_image()]), headers=JSON)
        assert good.status_code == 200


def test_memory_stays_flat_over_rounds_of_bad_input(server):
    process, address = server
    requests = _requests()
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:

        def round_of_bad_input() -> None:
            for _, path, body, headers, status, _ in requests:
                assert client.post(f"/v2/models/{path}/infer", content=body, headers=headers).status_code == status

        for _ in range(5):  # warm-up: allocator pools and caches settle
            round_of_bad_input()
        before = resident_bytes(process.pid)
        for _ in range(30):
            round_of_bad_input()
        growth = resident_bytes(process.pid) - before
        exposition = client.get("/metrics").text
    assert growth < 16 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 30 rounds"
    # Label values come from the repository only: names sent by clients never become series.
    assert 'model="nope"' not in exposition
    assert "passwd" not in exposition
