"""Errors as gRPC statuses, the codes Triton answers with, so a client mistake is never UNKNOWN.

Overload, loading and draining are UNAVAILABLE with ``google.rpc.RetryInfo`` in the status details (the HTTP
route's Retry-After): gRPC clients and proxies retry UNAVAILABLE, and the delay tells them when.
"""

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from app.errors import ServingError

if TYPE_CHECKING:  # generic in the type stubs only
    Rpc = grpc.aio.ServicerContext[Any, Any]
else:
    Rpc = grpc.aio.ServicerContext

# By the HTTP status each error carries (app/errors.py).
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.UNAVAILABLE,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
DEFAULT_RETRY_S = 1


def code_for(status: int) -> grpc.StatusCode:
    if status in _CODES:
        return _CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


def status_of(error: ServingError) -> grpc.Status:
    """The gRPC status for ``error``: its code, its message, and for UNAVAILABLE when to retry."""
    code = code_for(error.status)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    if code is grpc.StatusCode.UNAVAILABLE:
        delay = _seconds(error.headers.get("retry-after"))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay)))
        status.details.append(detail)
    return rpc_status.to_status(status)


def _seconds(retry_after: str | None) -> int:
    try:
        return max(1, int(retry_after)) if retry_after is not None else DEFAULT_RETRY_S
    except ValueError:
        return DEFAULT_RETRY_S
