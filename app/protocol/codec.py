"""Decode inference requests into numpy tensors and encode results, as JSON or with binary tensor data.

The binary tensor extension: the body is a JSON header of ``Inference-Header-Content-Length`` bytes,
followed by the raw bytes of every tensor that carries a ``binary_data_size`` parameter, in the order the
tensors are listed. Every check that depends on a declared size happens before anything is allocated.
"""

import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from app.errors import InvalidRequest, PayloadTooLarge
from app.protocol.datatypes import DATATYPES, datatype_of, element_count, numpy_dtype
from app.protocol.schemas import InferenceRequest, ParameterValue, RequestInput, RequestOutput

HEADER_LENGTH = "inference-header-content-length"
_LENGTH_PREFIX = struct.Struct("<I")
# What JSON numbers may become: an integer tensor must not silently truncate 1.5, and no numeric
# tensor may parse "1.5" from a string.
_ACCEPTED_KINDS = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    id: str | None
    parameters: dict[str, ParameterValue]
    inputs: list[Tensor]
    outputs: list[RequestOutput] | None
    """The outputs asked for, or None for all of them."""


@dataclass(frozen=True, slots=True)
class EncodedResponse:
    body: bytes
    headers: dict[str, str]


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field's path, e.g. ``inputs[0].shape[1]: ...``."""
    problems = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        problems.append(f"{path or 'body'}: {item['msg']}")
    return "; ".join(problems)


# Commas a valid JSON header may hold besides those between values: fields, inputs, outputs, and commas inside
# strings (an id, parameters). Each costs at most ~30 bytes parsed, so the allowance is cheap.
_STRUCTURE_COMMAS = 4096


def decode_request(body: bytes, header_length: int | None, max_values: int | None = None) -> DecodedRequest:
    """Parse a request body; ``header_length`` is the Inference-Header-Content-Length value, if sent.

    ``max_values`` is the most numbers a valid request to the model carries: a JSON header with more commas than
    that could hold is refused before parsing, since parsing builds a Python object of ~30 bytes per number
    (a 57 MB array became 850 MB before its shape could be checked).
    """
    if header_length is None:
        header_length = len(body)
    elif header_length == 0:
        raise InvalidRequest(
            "Inference-Header-Content-Length: 0 (a raw binary body without a JSON header) is not supported; "
            "send the JSON header first"
        )
    elif header_length > len(body):
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has only {len(body)} bytes"
        )
    # A header of fewer bytes than the allowance cannot hold too many commas: counting them cost a fifteen-KB JSON
    # body 9 µs, an eighth of decoding it.
    if max_values is not None and header_length > max_values + _STRUCTURE_COMMAS:
        commas = body.count(b",", 0, header_length)
        if commas > max_values + _STRUCTURE_COMMAS:
            raise PayloadTooLarge(
                f"the JSON body holds about {commas + 1} values; this model takes at most {max_values} in one request"
            )
    request = _parse_header(body[:header_length], binary=header_length < len(body))

    binary = memoryview(body)[header_length:]
    offset = 0
    tensors = []
    seen: set[str] = set()
    for spec in request.inputs:
        check_input(spec.name, spec.datatype, seen)
        size = (spec.parameters or {}).get("binary_data_size")
        if size is None:
            array = _from_json(spec)
        else:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidRequest(f"input '{spec.name}': binary_data_size must be a non-negative integer")
            if offset + size > len(binary):
                raise InvalidRequest(
                    f"input '{spec.name}': binary_data_size is {size} but only {len(binary) - offset} "
                    "bytes of binary data remain in the body"
                )
            array = from_binary(spec, binary[offset : offset + size])
            offset += size
        tensors.append(Tensor(spec.name, spec.datatype, array))
    if offset != len(binary):
        raise InvalidRequest(
            f"the body has {len(binary) - offset} bytes of binary data beyond what the inputs' binary_data_size "
            "parameters account for"
        )
    check_outputs(request.outputs)
    return DecodedRequest(request.id, request.parameters or {}, tensors, request.outputs)


_PARSED_HEADERS: dict[bytes, InferenceRequest] = {}
_MAX_PARSED_HEADERS = 256
_MAX_REMEMBERED_HEADER_BYTES = 4096


def _parse_header(raw: bytes, binary: bool) -> InferenceRequest:
    """The validated JSON part of a request. A client sending binary tensors sends the same few headers again and
    again (the same names, shapes and parameters; only the bytes after them change), so small ones are
    remembered, parsed, by their bytes: validating one was a twentieth of the request path. Nothing downstream
    changes a request, which is what lets requests share one."""
    remember = binary and len(raw) <= _MAX_REMEMBERED_HEADER_BYTES
    if remember and (known := _PARSED_HEADERS.get(raw)) is not None:
        return known
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request JSON is malformed: {exc}") from None
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid inference request: {describe_validation_error(exc)}") from None
    if remember:
        if len(_PARSED_HEADERS) >= _MAX_PARSED_HEADERS:  # clients sending ever new headers (request ids) churn it
            _PARSED_HEADERS.clear()
        _PARSED_HEADERS[raw] = request
    return request


def check_input(name: str, datatype: str, seen: set[str]) -> None:
    """An input is named once per request (``seen``: the names before it, to which this adds it) and its datatype
    is one of the protocol's."""
    if name in seen:
        raise InvalidRequest(f"input '{name}' is given more than once")
    seen.add(name)
    if datatype not in DATATYPES:
        raise InvalidRequest(f"input '{name}': unknown datatype '{datatype}'; expected one of {', '.join(DATATYPES)}")


def check_outputs(outputs: list[RequestOutput] | None) -> None:
    """Each output named once: the response repeats an output as often as it is asked for, so repeats would let
    one small request ask for a response thousands of times its size."""
    if outputs is None:
        return
    if not outputs:
        raise InvalidRequest("'outputs' is empty: name at least one output, or leave 'outputs' out for all of them")
    counts = Counter(output.name for output in outputs)
    if len(counts) != len(outputs):
        repeated = sorted(name for name, count in counts.items() if count > 1)[:10]
        raise InvalidRequest(f"outputs {repeated} are asked for more than once; name each output once")


def from_binary(spec: RequestInput, raw: memoryview) -> np.ndarray:
    count = element_count(spec.shape)
    if spec.datatype == "BYTES":
        return _bytes_from_binary(spec, raw, count)
    dtype = numpy_dtype(spec.datatype)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidRequest(
            f"input '{spec.name}': shape {spec.shape} of {spec.datatype} needs {expected} bytes, "
            f"binary_data_size is {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(spec.shape)


def _bytes_from_binary(spec: RequestInput, raw: memoryview, count: int) -> np.ndarray:
    items: list[bytes] = []
    position = 0
    while position < len(raw):
        if len(items) == count:
            raise InvalidRequest(f"input '{spec.name}': more BYTES elements in the binary data than shape {spec.shape}")
        if position + 4 > len(raw):
            raise InvalidRequest(f"input '{spec.name}': BYTES element {len(items)} has a truncated length prefix")
        (length,) = _LENGTH_PREFIX.unpack_from(raw, position)
        position += 4
        if position + length > len(raw):
            raise InvalidRequest(
                f"input '{spec.name}': BYTES element {len(items)} declares {length} bytes, "
                f"only {len(raw) - position} remain"
            )
        items.append(bytes(raw[position : position + length]))
        position += length
    if len(items) != count:
        raise InvalidRequest(
            f"input '{spec.name}': shape {spec.shape} needs {count} BYTES elements, the binary data holds {len(items)}"
        )
    array = np.empty(count, dtype=np.object_)
    array[:] = items
    return array.reshape(spec.shape)


def _from_json(spec: RequestInput) -> np.ndarray:
    if spec.data is None:
        raise InvalidRequest(f"input '{spec.name}' has neither 'data' nor a 'binary_data_size' parameter")
    count = element_count(spec.shape)
    if spec.datatype == "BYTES":
        array = _bytes_from_json(spec)
    else:
        try:
            parsed = np.asarray(spec.data)
        except ValueError:
            raise InvalidRequest(f"input '{spec.name}': 'data' is a ragged nested list") from None
        kind = "b" if spec.datatype == "BOOL" else numpy_dtype(spec.datatype).kind
        if spec.datatype == "UINT64" and parsed.dtype.kind == "f" and parsed.size:
            parsed = _big_integers(spec, parsed)
        if parsed.size and parsed.dtype.kind not in _ACCEPTED_KINDS[kind]:
            found = "strings" if parsed.dtype.kind in "USO" else f"{parsed.dtype} values"
            raise InvalidRequest(f"input '{spec.name}': datatype {spec.datatype} expects numbers, 'data' holds {found}")
        array = _cast(spec, parsed)
    if array.size != count:
        raise InvalidRequest(f"input '{spec.name}': shape {spec.shape} needs {count} elements, 'data' has {array.size}")
    return array.reshape(spec.shape)


def _big_integers(spec: RequestInput, parsed: np.ndarray) -> np.ndarray:
    """numpy parses integers above INT64's range mixed with smaller ones as float64, losing digits: when every
    item is an integer, take them exactly."""
    items = list(_flatten(spec.data))
    if not all(type(item) is int for item in items):
        return parsed
    info = np.iinfo(np.uint64)
    if min(items) < info.min or max(items) > info.max:
        raise InvalidRequest(f"input '{spec.name}': values must lie in [{info.min}, {info.max}] for UINT64")
    return np.array(items, dtype=np.uint64)


def _cast(spec: RequestInput, parsed: np.ndarray) -> np.ndarray:
    dtype = numpy_dtype(spec.datatype)
    if dtype.kind in "iu" and parsed.size:
        info = np.iinfo(dtype)  # type: ignore[type-var]
        if parsed.min() < info.min or parsed.max() > info.max:
            raise InvalidRequest(
                f"input '{spec.name}': values must lie in [{info.min}, {info.max}] for {spec.datatype}"
            )
    return parsed.astype(dtype, copy=False)


def _bytes_from_json(spec: RequestInput) -> np.ndarray:
    flat: list[bytes] = []
    for item in _flatten(spec.data):
        if not isinstance(item, str):
            raise InvalidRequest(f"input '{spec.name}': BYTES data must be strings, found {type(item).__name__}")
        flat.append(item.encode())
    array = np.empty(len(flat), dtype=np.object_)
    array[:] = flat
    return array


def _flatten(data: Any) -> Iterable[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flatten(item)
    else:
        yield data


def wants_binary(request: DecodedRequest, output: RequestOutput | None) -> bool:
    """Per-output ``binary_data`` wins over the request's ``binary_data_output``; JSON is the default."""
    if output is not None and output.parameters and "binary_data" in output.parameters:
        return bool(output.parameters["binary_data"])
    return bool(request.parameters.get("binary_data_output", False))


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
    parameters: dict[str, ParameterValue],
) -> EncodedResponse:
    """Serialise ``(name, array, as_binary)`` outputs in the order given."""
    documents = []
    chunks: list[bytes] = []
    for name, array, as_binary in outputs:
        datatype = datatype_of(array)
        document: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            raw = to_binary(array, datatype)
            document["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            document["data"] = [_as_text(item) for item in array.reshape(-1)]
        else:
            document["data"] = np.ascontiguousarray(array).reshape(-1)
        documents.append(document)
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": documents}
    if request_id is not None:
        header["id"] = request_id
    if parameters:
        header["parameters"] = parameters
    json_part = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return EncodedResponse(json_part, {"content-type": "application/json"})
    return EncodedResponse(
        b"".join([json_part, *chunks]),
        {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(json_part))},
    )


def to_binary(array: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=numpy_dtype(datatype)).tobytes()
    parts = []
    for item in array.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH_PREFIX.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _as_text(item: object) -> str:
    return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
