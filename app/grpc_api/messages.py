"""ModelInferRequest and ModelInferResponse messages to and from what the inference service answers.

Tensors arrive either in ``raw_input_contents`` (one entry per input, in input order, row-major, little-endian;
BYTES elements each a 4-byte length and the bytes: what tritonclient sends by default) or in each input's typed
``contents``. Answers always go in ``raw_output_contents``, as Triton sends them, which every client reads.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2

from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest, Tensor, check_input, check_outputs, from_binary, to_binary
from app.protocol.datatypes import datatype_of, element_count, numpy_dtype
from app.protocol.schemas import ParameterValue, RequestInput, RequestOutput

# The typed field of InferTensorContents each datatype travels in; FP16 has none (raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_infer_request(message: Any) -> DecodedRequest:
    """The request a ModelInferRequest carries; raises :class:`InvalidRequest` naming what is wrong."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidRequest(
            f"raw_input_contents holds {len(raw)} tensors for {len(message.inputs)} inputs; "
            "send one for every input, in the order of 'inputs'"
        )
    if not message.inputs:
        raise InvalidRequest("the request has no inputs")
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        check_input(name, tensor.datatype, seen)
        shape = list(tensor.shape)
        if any(dim < 0 for dim in shape):
            raise InvalidRequest(f"input '{name}': shape {shape} has a negative dimension")
        spec = RequestInput(name=name, shape=shape, datatype=tensor.datatype)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidRequest(f"input '{name}': sent in both 'contents' and raw_input_contents; use one")
            array = from_binary(spec, memoryview(raw[index]))
        else:
            array = _from_contents(spec, tensor.contents)
        tensors.append(Tensor(name, tensor.datatype, array))
    # Built without validation: protobuf has typed the fields already, and building six validated models was a
    # tenth of decoding a request that names its outputs (as perf_analyzer's do).
    outputs = [
        RequestOutput.model_construct(name=o.name, parameters=parameters(o.parameters) or None) for o in message.outputs
    ]
    check_outputs(outputs or None)
    return DecodedRequest(message.id or None, parameters(message.parameters), tensors, outputs or None)


def _from_contents(spec: RequestInput, contents: Any) -> np.ndarray:
    field = _CONTENTS.get(spec.datatype)
    if field is None:
        raise InvalidRequest(f"input '{spec.name}': {spec.datatype} travels only in raw_input_contents")
    values = getattr(contents, field)
    count = element_count(spec.shape)
    if len(values) != count:
        raise InvalidRequest(
            f"input '{spec.name}': shape {spec.shape} needs {count} elements, contents.{field} holds {len(values)}"
        )
    if spec.datatype == "BYTES":
        array = np.empty(count, dtype=np.object_)
        array[:] = list(values)
        return array.reshape(spec.shape)
    dtype = numpy_dtype(spec.datatype)
    if field in ("int_contents", "uint_contents") and dtype.itemsize < 4 and count:
        # Narrow integers travel widened to 32 bits: a value that does not fit would wrap silently.
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(dtype)  # type: ignore[type-var]
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidRequest(
                f"input '{spec.name}': values must lie in [{info.min}, {info.max}] for {spec.datatype}"
            )
    return np.asarray(values, dtype=dtype).reshape(spec.shape)


def parameters(message: Mapping[str, Any]) -> dict[str, ParameterValue]:
    """InferParameter values as the plain ones the HTTP route's JSON gives (unset ones left out)."""
    found: dict[str, ParameterValue] = {}
    for key, parameter in message.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            found[key] = getattr(parameter, choice)
    return found


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[tuple[str, np.ndarray, bool]],
    response_parameters: dict[str, ParameterValue],
) -> Any:
    response = service_pb2.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    for name, array, _ in outputs:
        datatype = datatype_of(array)
        response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(to_binary(array, datatype))
    for key, value in response_parameters.items():
        _set(response.parameters[key], value)
    return response


def _set(parameter: Any, value: ParameterValue) -> None:
    if isinstance(value, bool):
        parameter.bool_param = value
    elif isinstance(value, int):
        parameter.int64_param = value
    elif isinstance(value, float):
        parameter.double_param = value
    else:
        parameter.string_param = value
