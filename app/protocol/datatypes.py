"""KServe v2 tensor datatypes and their numpy equivalents."""

from typing import Final

import numpy as np

# Little-endian everywhere: the binary tensor extension fixes the byte order.
NUMPY_DTYPES: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

DATATYPES: Final[tuple[str, ...]] = tuple(NUMPY_DTYPES)
# Looked up for every output of every response, so by dtype, in both byte orders.
_NAMES: Final[dict[np.dtype[np.generic], str]] = {
    dtype.newbyteorder(order): name for name, dtype in NUMPY_DTYPES.items() if name != "BYTES" for order in ("<", ">")
}


def numpy_dtype(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype for a v2 datatype name; raises KeyError for unknown names."""
    return NUMPY_DTYPES[datatype]


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype name of a numpy array produced by a model."""
    name = _NAMES.get(array.dtype)
    if name is not None:
        return name
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    raise ValueError(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")


def triton_type(datatype: str) -> str:
    """Triton's model-config spelling (``TYPE_FP32``; BYTES is ``TYPE_STRING``)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def element_count(shape: list[int] | tuple[int, ...]) -> int:
    """Elements in a tensor of this shape, computed in Python ints so it never overflows."""
    count = 1
    for dim in shape:
        count *= dim
    return count
