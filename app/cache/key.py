"""Cache keys and entries.

A key covers everything that decides a result: model, variant, the digest of the variant's file (a rebuilt
model never serves old results), every input's name, datatype, shape and raw bytes, and the outputs asked for
with their parameters. Inputs are hashed from their decoded numpy form, so the same tensor sent as JSON or as
binary data gives the same key. ``binary_data`` only changes how outputs are encoded, not their values, so it
is left out.
"""

import functools
import hashlib
import math
import struct
from collections.abc import Iterable

import numpy as np
import orjson

from app.protocol.codec import DecodedRequest, Tensor
from app.protocol.datatypes import datatype_of, numpy_dtype

FORMAT_VERSION = 1
MAGIC = b"SVMC"
_ENCODING_ONLY = frozenset({"binary_data"})
_LENGTH = struct.Struct("<I")


class CorruptEntry(Exception):
    """A stored entry that is not one of ours, of another format, or of another model file."""


def cache_key(model: str, variant: str, digest: str, request: DecodedRequest, outputs: Iterable[str]) -> str:
    hasher = _variant_hasher(model, variant, digest).copy()
    for tensor in sorted(request.inputs, key=lambda t: t.name):
        hasher.update(_tensor_header(tensor.name, tensor.datatype, tensor.array.shape))
        hasher.update(_tensor_bytes(tensor))
    if request.outputs is None:
        hasher.update(_outputs_part(tuple(outputs)))
    else:
        parameters = {
            o.name: {k: v for k, v in (o.parameters or {}).items() if k not in _ENCODING_ONLY} for o in request.outputs
        }
        hasher.update(orjson.dumps([list(outputs), parameters], option=orjson.OPT_SORT_KEYS))
    return f"{model}:{variant}:{hasher.hexdigest()}"


# What every request to a variant, a tensor of a given name and shape, or the default outputs hash the same:
# formatted once, not per request (a probe or a hit computes a key on the request path).
@functools.lru_cache(maxsize=256)
def _variant_hasher(model: str, variant: str, digest: str) -> "hashlib._Hash":
    return hashlib.sha256(f"v{FORMAT_VERSION}\0{model}\0{variant}\0{digest}\0".encode())


@functools.lru_cache(maxsize=1024)
def _tensor_header(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    return f"{name}\0{datatype}\0{list(shape)}\0".encode()


@functools.lru_cache(maxsize=256)
def _outputs_part(outputs: tuple[str, ...]) -> bytes:
    return orjson.dumps([list(outputs), {}], option=orjson.OPT_SORT_KEYS)


def _tensor_bytes(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(item)) + bytes(item) for item in tensor.array.reshape(-1))
    return np.ascontiguousarray(tensor.array, dtype=numpy_dtype(tensor.datatype)).tobytes()


def encode_entry(digest: str, outputs: dict[str, np.ndarray]) -> bytes:
    """A self-describing entry: magic, format version, the file digest, then each output's header and bytes."""
    header = {
        "v": FORMAT_VERSION,
        "digest": digest,
        "outputs": [[name, datatype_of(array), list(array.shape)] for name, array in outputs.items()],
    }
    json_part = orjson.dumps(header)
    body = b"".join(_output_bytes(array) for array in outputs.values())
    return MAGIC + _LENGTH.pack(len(json_part)) + json_part + body


def decode_entry(raw: bytes, digest: str) -> dict[str, np.ndarray]:
    """The outputs of an entry, checked: anything that is not exactly what we wrote raises CorruptEntry."""
    try:
        if raw[:4] != MAGIC:
            raise CorruptEntry("not a Servometer cache entry")
        (length,) = _LENGTH.unpack_from(raw, 4)
        header = orjson.loads(raw[8 : 8 + length])
        if header.get("v") != FORMAT_VERSION or header.get("digest") != digest:
            raise CorruptEntry("entry of another format or model file")
        offset = 8 + length
        outputs = {}
        for name, datatype, shape in header["outputs"]:
            if datatype == "BYTES":
                outputs[name], offset = _bytes_output(raw, offset, shape)
                continue
            dtype = numpy_dtype(datatype)
            size = dtype.itemsize * math.prod(shape)
            if offset + size > len(raw):
                raise CorruptEntry("entry is truncated")
            outputs[name] = np.frombuffer(raw, dtype=dtype, count=size // dtype.itemsize, offset=offset).reshape(shape)
            offset += size
        if offset != len(raw):
            raise CorruptEntry("entry has trailing bytes")
        return outputs
    except CorruptEntry:
        raise
    except (ValueError, KeyError, TypeError, struct.error, orjson.JSONDecodeError) as exc:
        raise CorruptEntry(f"entry cannot be read: {exc}") from None


def _output_bytes(array: np.ndarray) -> bytes:
    if array.dtype.kind != "O":
        return np.ascontiguousarray(array).tobytes()
    return b"".join(_LENGTH.pack(len(item)) + bytes(item) for item in array.reshape(-1))


def _bytes_output(raw: bytes, offset: int, shape: list[int]) -> tuple[np.ndarray, int]:
    """A BYTES output of ``shape`` starting at ``offset`` (length-prefixed items), and the offset after it."""
    items = []
    for _ in range(math.prod(shape)):
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise CorruptEntry("entry is truncated")
        items.append(raw[offset : offset + length])
        offset += length
    array = np.empty(len(items), dtype=np.object_)
    array[:] = items
    return array.reshape(shape), offset
