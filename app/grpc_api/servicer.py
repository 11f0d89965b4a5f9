"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``, Triton's superset of KServe's):
the same service, routing, cache, batcher and telemetry as the HTTP routes, behind other framing.

The messages and the servicer base come from ``tritonclient[grpc]`` (``service_pb2``), generated from Triton's
grpc_service.proto: the exact wire format tritonclient and perf_analyzer speak.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from app import __version__, model_views
from app.context import AppContext
from app.errors import ServingError
from app.grpc_api.messages import decode_infer_request, encode_infer_response
from app.grpc_api.status import Rpc, status_of
from app.protocol.schemas import ParameterValue
from app.telemetry.request_ids import REQUEST_ID

log = logging.getLogger(__name__)

ROUTING_KEY = "servometer-routing-key"
"""Metadata key for sticky routing, as the HTTP route's header."""


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def ServerLive(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ServerLive", rpc, self._live)

    async def ServerReady(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ServerReady", rpc, self._ready)

    async def ModelReady(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ModelReady", rpc, lambda: self._model_ready(request))

    async def ServerMetadata(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ServerMetadata", rpc, self._server_metadata)

    async def ModelMetadata(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ModelMetadata", rpc, lambda: self._model_metadata(request))

    async def ModelConfig(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ModelConfig", rpc, lambda: self._model_config(request))

    async def ModelStatistics(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ModelStatistics", rpc, lambda: self._model_statistics(request))

    async def ModelInfer(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("ModelInfer", rpc, lambda: self._infer(request, rpc))

    async def RepositoryIndex(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("RepositoryIndex", rpc, self._repository_index)

    async def RepositoryModelLoad(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("RepositoryModelLoad", rpc, lambda: self._load(request.model_name))

    async def RepositoryModelUnload(self, request: Any, rpc: Rpc) -> Any:
        return await self._answer("RepositoryModelUnload", rpc, lambda: self._unload(request.model_name))

    async def _answer(self, method: str, rpc: Rpc, work: Callable[[], Awaitable[Any]]) -> Any:
        """``work``'s message, or the RPC ended with the status its error maps to; counted either way."""
        metrics = self.context.metrics
        try:
            response = await work()
        except ServingError as error:
            status = status_of(error)
            metrics.grpc_call(method, status.code.name)
            await rpc.abort_with_status(status)
        except Exception:  # a bug must cost one call an INTERNAL, never the server
            log.exception("gRPC %s failed unexpectedly", method)
            metrics.grpc_call(method, grpc.StatusCode.INTERNAL.name)
            await rpc.abort(grpc.StatusCode.INTERNAL, "internal server error")
        metrics.grpc_call(method, grpc.StatusCode.OK.name)
        return response

    async def _live(self) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def _ready(self) -> Any:
        return service_pb2.ServerReadyResponse(ready=not self.context.service.not_ready_reasons())

    async def _model_ready(self, request: Any) -> Any:
        try:
            model_views.check_ready(self.context.registry, request.name, request.version or None)
        except ServingError as error:
            if error.status != 503:  # unknown model or version: NOT_FOUND, as Triton answers
                raise
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=True)

    async def _server_metadata(self) -> Any:
        return service_pb2.ServerMetadataResponse(
            name="servometer", version=__version__, extensions=model_views.EXTENSIONS
        )

    async def _model_metadata(self, request: Any) -> Any:
        metadata = model_views.model_metadata(self.context.registry, request.name, request.version or None)
        return json_format.ParseDict(metadata.model_dump(), service_pb2.ModelMetadataResponse())

    async def _model_config(self, request: Any) -> Any:
        variant = self.context.registry.resolve(request.name, request.version or None)
        config = model_views.triton_config(variant, cache_on=self.context.service.cache is not None)
        parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
        return service_pb2.ModelConfigResponse(config=parsed)

    async def _model_statistics(self, request: Any) -> Any:
        stats = model_views.model_stats(
            self.context.registry, self.context.metrics, request.name or None, request.version or None
        )
        return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def _infer(self, request: Any, rpc: Rpc) -> Any:
        context = self.context
        version = request.model_version or None
        metadata = dict(rpc.invocation_metadata() or ())
        variant = context.service.resolve(request.model_name, version, _text(metadata.get(ROUTING_KEY)))
        if request.id:
            REQUEST_ID.set(request.id)
        with context.metrics.for_variant(variant.model_name, variant.name).answering():
            decoded = decode_infer_request(request)
            remaining = rpc.time_remaining()
            if remaining is not None and "timeout" not in decoded.parameters:
                # The client's deadline bounds the wait in the queue, counted as the client's own timeout.
                decoded.parameters["timeout"] = max(1, int(remaining * 1_000_000))
            result = await context.service.infer(variant, decoded, None, True, version is None)
            parameters: dict[str, ParameterValue] = {"variant": variant.name}
            if result.response_id is not None:
                parameters["response_id"] = result.response_id
            return encode_infer_response(
                variant.model_name, str(variant.version), decoded.id, result.outputs, parameters
            )

    async def _repository_index(self) -> Any:
        response = service_pb2.RepositoryIndexResponse()
        for item in model_views.repository_index(self.context.registry):
            response.models.add(**{key: value or "" for key, value in item.items()})
        return response

    async def _load(self, model: str) -> Any:
        await self.context.load_model(model)
        return service_pb2.RepositoryModelLoadResponse()

    async def _unload(self, model: str) -> Any:
        await self.context.unload_model(model)
        return service_pb2.RepositoryModelUnloadResponse()


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value
