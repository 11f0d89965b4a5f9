import struct

import numpy as np
import orjson
import pytest

from app.errors import InvalidRequest, PayloadTooLarge
from app.protocol.codec import decode_request, encode_response, wants_binary


def _json(document: dict) -> bytes:
    return orjson.dumps(document)


def _binary(inputs: list[tuple[str, str, list[int], bytes]], **extra) -> tuple[bytes, int]:
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(raw)}}
            for n, d, s, raw in inputs
        ],
        **extra,
    }
    json_part = orjson.dumps(header)
    return json_part + b"".join(raw for *_, raw in inputs), len(json_part)


def test_json_tensor_decodes_to_numpy_with_declared_shape_and_dtype():
    body = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2.5, 3, 4]}]})
    request = decode_request(body, None)
    (tensor,) = request.inputs
    assert tensor.array.dtype == np.float32
    np.testing.assert_array_equal(tensor.array, [[1, 2.5], [3, 4]])


def test_nested_and_flat_json_data_decode_the_same():
    flat = decode_request(
        _json({"inputs": [{"name": "x", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}]}), None
    )
    nested = decode_request(
        _json({"inputs": [{"name": "x", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}), None
    )
    np.testing.assert_array_equal(flat.inputs[0].array, nested.inputs[0].array)


def test_binary_tensor_equals_json_tensor():
    values = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    body, length = _binary([("x", "FP32", [2, 3], values.tobytes())])
    from_binary = decode_request(body, length).inputs[0].array
    from_json = (
        decode_request(
            _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3], "data": values.tolist()}]}), None
        )
        .inputs[0]
        .array
    )
    np.testing.assert_array_equal(from_binary, values)
    np.testing.assert_array_equal(from_json, values)


def test_binary_and_json_inputs_mix_in_one_request():
    raw = np.array([1, 2], dtype="<i8").tobytes()
    header = {
        "inputs": [
            {"name": "a", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
            {"name": "b", "datatype": "FP32", "shape": [1], "data": [0.5]},
        ]
    }
    json_part = orjson.dumps(header)
    request = decode_request(json_part + raw, len(json_part))
    np.testing.assert_array_equal(request.inputs[0].array, [1, 2])
    np.testing.assert_array_equal(request.inputs[1].array, [0.5])


def test_bytes_tensors_decode_from_json_strings_and_length_prefixed_binary():
    words = [b"hello", b"", b"caf\xc3\xa9"]
    raw = b"".join(struct.pack("<I", len(w)) + w for w in words)
    body, length = _binary([("s", "BYTES", [3], raw)])
    assert list(decode_request(body, length).inputs[0].array) == words
    from_json = decode_request(
        _json({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [3], "data": ["hello", "", "café"]}]}), None
    )
    assert list(from_json.inputs[0].array) == words


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]},
            "shape [2, 2] needs 4 elements, 'data' has 3",
        ),
        ({"name": "x", "datatype": "FP33", "shape": [1], "data": [1]}, "unknown datatype 'FP33'"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": ["1.5"]}, "expects numbers, 'data' holds strings"),
        (
            {"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]},
            "expects numbers, 'data' holds float64 values",
        ),
        ({"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}, "values must lie in [0, 255] for UINT8"),
        ({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]}, "ragged"),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, "neither 'data' nor a 'binary_data_size'"),
        ({"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}, "inputs[0].shape[0]"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [3]}, "BYTES data must be strings"),
    ],
)
def test_bad_json_tensor_is_rejected_naming_the_input_and_the_problem(tensor, message):
    with pytest.raises(InvalidRequest) as caught:
        decode_request(_json({"inputs": [tensor]}), None)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request JSON is malformed"),
        (b"[]", "invalid inference request"),
        (b'{"inputs": []}', "inputs: List should have at least 1 item"),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "colour": 1}]}',
            "inputs[0].colour",
        ),
    ],
)
def test_malformed_request_documents_are_rejected(body, message):
    with pytest.raises(InvalidRequest) as caught:
        decode_request(body, None)
    assert message in caught.value.message


def test_binary_size_that_does_not_fit_the_shape_is_rejected_before_allocating():
    body, length = _binary([("x", "FP32", [100000, 100000], b"\0" * 16)])
    with pytest.raises(InvalidRequest, match=r"needs 40000000000 bytes, binary_data_size is 16"):
        decode_request(body, length)


def test_binary_size_larger_than_the_body_is_rejected():
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}}]}
    )
    with pytest.raises(InvalidRequest, match="only 8 bytes of binary data remain"):
        decode_request(header + b"\0" * 8, len(header))


def test_trailing_binary_bytes_nobody_claims_are_rejected():
    body, length = _binary([("x", "FP32", [1], b"\0" * 4)])
    with pytest.raises(InvalidRequest, match="4 bytes of binary data beyond"):
        decode_request(body + b"\0" * 4, length)


@pytest.mark.parametrize(("declared", "message"), [(0, "raw binary body"), (10**6, "body has only")])
def test_header_length_that_lies_is_rejected(declared, message):
    body = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]})
    with pytest.raises(InvalidRequest, match=message):
        decode_request(body, declared)


def test_header_length_equal_to_the_json_size_is_accepted_as_perf_analyzer_sends_it():
    body = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]})
    assert decode_request(body, len(body)).inputs[0].array.tolist() == [1.0]


def test_bytes_binary_with_a_length_prefix_past_the_end_is_rejected():
    body, length = _binary([("s", "BYTES", [1], struct.pack("<I", 100) + b"abc")])
    with pytest.raises(InvalidRequest, match="declares 100 bytes, only 3 remain"):
        decode_request(body, length)


def test_duplicate_input_names_are_rejected():
    tensor = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}
    with pytest.raises(InvalidRequest, match="more than once"):
        decode_request(_json({"inputs": [tensor, tensor]}), None)


def _decode_response(encoded) -> tuple[dict, bytes]:
    length = int(encoded.headers.get("inference-header-content-length", len(encoded.body)))
    return orjson.loads(encoded.body[:length]), encoded.body[length:]


def test_json_response_round_trips_float32_exactly():
    values = (np.random.default_rng(0).standard_normal((3, 5)) * 1e3).astype(np.float32)
    encoded = encode_response(
        model_name="m", model_version="1", request_id="r1", outputs=[("y", values, False)], parameters={}
    )
    header, rest = _decode_response(encoded)
    assert rest == b""
    assert encoded.headers["content-type"] == "application/json"
    assert header["id"] == "r1"
    (output,) = header["outputs"]
    assert (output["datatype"], output["shape"]) == ("FP32", [3, 5])
    np.testing.assert_array_equal(np.array(output["data"], dtype=np.float32).reshape(3, 5), values)


def test_binary_outputs_follow_the_json_header_in_order():
    first = np.arange(4, dtype=np.int64)
    second = np.array([[0.25, 0.5]], dtype=np.float32)
    encoded = encode_response(
        model_name="m",
        model_version="1",
        request_id=None,
        outputs=[("a", first, True), ("b", second, True)],
        parameters={"variant": "fp32"},
    )
    header, rest = _decode_response(encoded)
    assert encoded.headers["content-type"] == "application/octet-stream"
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [32, 8]
    np.testing.assert_array_equal(np.frombuffer(rest[:32], "<i8"), first)
    np.testing.assert_array_equal(np.frombuffer(rest[32:], "<f4").reshape(1, 2), second)
    assert header["parameters"] == {"variant": "fp32"}


def test_bytes_outputs_encode_as_strings_or_length_prefixed():
    words = np.array([b"ab", b"c"], dtype=np.object_)
    as_json, _ = _decode_response(
        encode_response(
            model_name="m", model_version="1", request_id=None, outputs=[("w", words, False)], parameters={}
        )
    )
    assert as_json["outputs"][0]["data"] == ["ab", "c"]
    _, raw = _decode_response(
        encode_response(model_name="m", model_version="1", request_id=None, outputs=[("w", words, True)], parameters={})
    )
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c"


def test_output_binary_flag_overrides_the_request_default():
    body = _json(
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "a", "parameters": {"binary_data": False}}, {"name": "b"}],
        }
    )
    request = decode_request(body, None)
    assert request.outputs is not None
    assert [wants_binary(request, output) for output in request.outputs] == [False, True]
    assert wants_binary(request, None) is True


def test_an_output_asked_for_twice_is_refused_before_anything_is_computed():
    image = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    repeated = [{"name": "probabilities"}] * 150_000 + [{"name": "label"}] * 2
    with pytest.raises(InvalidRequest, match=r"outputs \['label', 'probabilities'\] are asked for more than once"):
        decode_request(_json({"inputs": [image], "outputs": repeated}), None)


def test_an_empty_outputs_list_is_refused_naming_the_field():
    image = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    with pytest.raises(InvalidRequest, match="'outputs' is empty"):
        decode_request(_json({"inputs": [image], "outputs": []}), None)


def test_a_json_body_with_more_values_than_the_model_takes_is_refused_before_parsing(monkeypatch):
    parsed = []
    monkeypatch.setattr("app.protocol.codec.orjson.loads", lambda raw: parsed.append(raw))
    body = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1_000_000], "data": [0.0] * 1_000_000}]})
    with pytest.raises(PayloadTooLarge, match=r"holds about 100000\d values; this model takes at most 4096"):
        decode_request(body, None, max_values=4096)
    assert parsed == []


def test_a_json_body_within_the_value_budget_decodes():
    body = _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [64, 64], "data": [0.5] * 4096}]})
    assert decode_request(body, None, max_values=4096).inputs[0].shape == (64, 64)


def test_requests_sharing_a_binary_header_each_get_their_own_tensors():
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]}
    )
    first = decode_request(header + np.array([1, 2], np.float32).tobytes(), len(header))
    second = decode_request(header + np.array([3, 4], np.float32).tobytes(), len(header))
    assert first.inputs[0].array.tolist() == [[1, 2]]
    assert second.inputs[0].array.tolist() == [[3, 4]]


def test_an_invalid_binary_header_is_refused_every_time_it_comes():
    header = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "parameters": {}}]})
    for _ in range(2):
        with pytest.raises(InvalidRequest, match=r"inputs\[0\]\.shape\[0\]"):
            decode_request(header + b"\0" * 4, len(header))
