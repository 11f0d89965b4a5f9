"""API keys on gRPC: the ``authorization`` metadata (``Bearer <key>``), checked before any handler runs, with the
same rules as HTTP (:mod:`app.keys`): repository RPCs need the management key, liveness, readiness and the health
service are open, every other RPC takes an API key when keys are set."""

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from app.grpc_api.status import Rpc, code_for
from app.keys import Access, KeyCheck, bearer_token

if TYPE_CHECKING:  # generic in the type stubs only
    Handler = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler

_SERVICE = "/inference.GRPCInferenceService/"
_OPEN = (f"{_SERVICE}ServerLive", f"{_SERVICE}ServerReady")


def access_of(method: str) -> Access:
    """The access an RPC's full method name (``/package.Service/Method``) needs."""
    if method.startswith(f"{_SERVICE}Repository"):
        return Access.MANAGEMENT
    if method in _OPEN or method.startswith("/grpc.health.v1.Health/"):
        return Access.PUBLIC
    return Access.API


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> bytes | None:
    """The call's API key, from its ``authorization`` metadata."""
    for key, value in metadata or ():
        if key == "authorization":
            return bearer_token(value if isinstance(value, bytes) else value.encode("latin-1"))
    return None


class KeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyCheck) -> None:
        self._keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        refusal = None
        if self._keys.enabled or details.method.startswith(f"{_SERVICE}Repository"):
            refusal = self._keys.refusal(access_of(details.method), bearer(details.invocation_metadata))
        handler = await continuation(details)
        if refusal is None or handler is None:
            return handler
        status, message = refusal
        return _denying(handler, code_for(status), message)


def _denying(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of ``handler``'s kind that ends the call with ``code`` before reading any request."""

    async def deny(request: Any, context: Rpc) -> Any:
        await context.abort(code, message)

    async def deny_stream(request: Any, context: Rpc) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator, as streaming handlers are

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream)
    return grpc.unary_unary_rpc_method_handler(deny)
