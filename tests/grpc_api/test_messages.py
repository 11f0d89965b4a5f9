"""ModelInferRequest / ModelInferResponse messages: every datatype and shape, in raw_input_contents as tritonclient
sends it or in typed contents, decodes to the array that was sent; answers read back as tritonclient reads them."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tritonclient.grpc import InferInput, InferResult, service_pb2
from tritonclient.utils import deserialize_bytes_tensor

from app.errors import InvalidRequest
from app.grpc_api.messages import decode_infer_request, encode_infer_response
from app.protocol.datatypes import NUMPY_DTYPES

NUMERIC = [name for name in NUMPY_DTYPES if name != "BYTES"]
# tritonclient's contents field for each datatype (FP16 travels raw only).
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}  # fmt: skip
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from([*NUMERIC, "BYTES"]))
    shape = draw(SHAPES)
    if datatype == "BYTES":
        items = draw(st.lists(st.binary(max_size=12), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        array = np.empty(len(items), dtype=np.object_)
        array[:] = items
        return datatype, array.reshape(shape)
    dtype = NUMPY_DTYPES[datatype]
    elements = hnp.from_dtype(dtype, allow_nan=False) if dtype.kind == "f" else hnp.from_dtype(dtype)
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements))


@given(sent=tensors(), raw=st.booleans())
def test_every_datatype_and_shape_decodes_to_what_was_sent(sent, raw):
    datatype, array = sent
    request = service_pb2.ModelInferRequest(model_name="m")
    if raw:
        tensor = InferInput("x", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)  # tritonclient's own raw encoding
        request.inputs.extend([tensor._get_tensor()])
        request.raw_input_contents.extend([tensor._get_content()])
    elif datatype == "FP16":
        request.inputs.add(name="x", datatype=datatype, shape=array.shape)
        with pytest.raises(InvalidRequest, match="raw_input_contents"):
            decode_infer_request(request)
        return
    else:
        tensor = request.inputs.add(name="x", datatype=datatype, shape=array.shape)
        field = "bytes_contents" if datatype == "BYTES" else CONTENTS[datatype]
        getattr(tensor.contents, field).extend(array.reshape(-1).tolist())
    decoded = decode_infer_request(request)
    assert [t.name for t in decoded.inputs] == ["x"]
    got = decoded.inputs[0].array
    assert got.shape == array.shape
    if datatype == "BYTES":
        assert got.reshape(-1).tolist() == array.reshape(-1).tolist()
    else:
        np.testing.assert_array_equal(got, array)
        assert got.dtype == array.dtype


@given(sent=tensors())
def test_answers_read_back_through_tritonclient_as_computed(sent):
    datatype, array = sent
    response = encode_infer_response("m", "1", "req-1", [("y", array, False)], {"variant": "fp32"})
    result = InferResult(response)
    read = result.as_numpy("y")
    if datatype == "BYTES":
        assert read.reshape(-1).tolist() == array.reshape(-1).tolist()
    else:
        np.testing.assert_array_equal(read.reshape(array.shape), array)
    assert response.parameters["variant"].string_param == "fp32"
    assert response.id == "req-1"


def test_narrow_integers_that_do_not_fit_are_refused_not_wrapped():
    request = service_pb2.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="INT8", shape=[2]).contents.int_contents.extend([1, 300])
    with pytest.raises(InvalidRequest, match=r"\[-128, 127\]"):
        decode_infer_request(request)


def test_contents_of_the_wrong_length_name_the_field_and_the_counts():
    request = service_pb2.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidRequest, match=r"needs 6 elements, contents.fp32_contents holds 2"):
        decode_infer_request(request)


def test_bytes_in_raw_form_are_length_prefixed_as_tritonclient_reads_them():
    array = np.array([b"a", b"", b"\xff\x00"], dtype=np.object_)
    response = encode_infer_response("m", "1", None, [("y", array, False)], {})
    assert deserialize_bytes_tensor(response.raw_output_contents[0]).tolist() == array.tolist()
