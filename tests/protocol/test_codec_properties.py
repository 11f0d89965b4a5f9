"""The codec over generated tensors (hypothesis): every supported datatype, any shape (zero-sized ones included),
as JSON and as binary tensor data, in requests and in responses.

JSON has no NaN or Inf and carries BYTES as text, so the JSON cases draw finite numbers and text; the binary
cases draw any value of the datatype and any bytes.
"""

import struct

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.protocol.codec import HEADER_LENGTH, decode_request, encode_response
from app.protocol.datatypes import DATATYPES, numpy_dtype

SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def tensors(draw: st.DrawFn, for_json: bool) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(SHAPES)
    if datatype == "BYTES":
        items = st.text(st.characters(exclude_categories=["Cs"])).map(str.encode) if for_json else st.binary()
        flat = draw(st.lists(items, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        array = np.empty(len(flat), dtype=np.object_)
        array[:] = flat
        return datatype, array.reshape(shape)
    dtype = numpy_dtype(datatype)
    finite = not (for_json and dtype.kind == "f")
    elements = hnp.from_dtype(dtype, allow_nan=finite, allow_infinity=finite) if dtype.kind == "f" else None
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements))


def _json_data(array: np.ndarray) -> object:
    if array.dtype == np.object_:
        return [item.decode() for item in array.reshape(-1)]
    return array.tolist()


def _raw(array: np.ndarray) -> bytes:
    if array.dtype != np.object_:
        return array.tobytes()
    return b"".join(struct.pack("<I", len(item)) + item for item in array.reshape(-1))


def _assert_same(decoded: np.ndarray, original: np.ndarray) -> None:
    assert decoded.dtype == original.dtype
    assert decoded.shape == original.shape
    if original.dtype == np.object_:
        assert decoded.tolist() == original.tolist()
    else:
        np.testing.assert_array_equal(decoded, original)


def _request(datatype: str, array: np.ndarray, binary: bool) -> tuple[bytes, int | None]:
    tensor: dict[str, object] = {"name": "x", "datatype": datatype, "shape": list(array.shape)}
    if not binary:
        tensor["data"] = _json_data(array)
        return orjson.dumps({"inputs": [tensor]}), None
    raw = _raw(array)
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps({"inputs": [tensor]})
    return header + raw, len(header)


def _response_as_request(body: bytes, headers: dict[str, str]) -> np.ndarray:
    """A response's outputs have the layout of request inputs: decode them with the request decoder."""
    length = int(headers[HEADER_LENGTH]) if HEADER_LENGTH in headers else len(body)
    header = orjson.loads(body[:length])
    renamed = orjson.dumps({"inputs": header["outputs"]})
    decoded = decode_request(renamed + body[length:], len(renamed))
    return decoded.inputs[0].array


@settings(max_examples=300, deadline=None)
@given(tensor=tensors(for_json=False))
def test_any_tensor_round_trips_as_binary_in_requests_and_responses(tensor):
    datatype, array = tensor
    body, length = _request(datatype, array, binary=True)
    _assert_same(decode_request(body, length).inputs[0].array, array)
    encoded = encode_response(model_name="m", model_version="1", request_id=None, outputs=[("x", array, True)],
                              parameters={})  # fmt: skip
    _assert_same(_response_as_request(encoded.body, encoded.headers), array)


@settings(max_examples=300, deadline=None)
@given(tensor=tensors(for_json=True))
def test_any_tensor_round_trips_as_json_in_requests_and_responses(tensor):
    datatype, array = tensor
    body, _ = _request(datatype, array, binary=False)
    _assert_same(decode_request(body, None).inputs[0].array, array)
    encoded = encode_response(model_name="m", model_version="1", request_id=None, outputs=[("x", array, False)],
                              parameters={})  # fmt: skip
    _assert_same(_response_as_request(encoded.body, encoded.headers), array)


@settings(max_examples=300, deadline=None)
@given(tensor=tensors(for_json=True))
def test_json_and_binary_encodings_of_a_tensor_decode_to_equal_arrays(tensor):
    datatype, array = tensor
    from_json = decode_request(*_request(datatype, array, binary=False)).inputs[0].array
    from_binary = decode_request(*_request(datatype, array, binary=True)).inputs[0].array
    _assert_same(from_json, from_binary)
