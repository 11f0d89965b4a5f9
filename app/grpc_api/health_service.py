"""The standard gRPC health checking protocol (``grpc.health.v1.Health``), for Kubernetes' gRPC probes and load
balancers: SERVING exactly when HTTP's ``/v2/health/ready`` answers 200 (every required model ready, not draining)."""

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.grpc_api.status import Rpc
from app.service import InferenceService

INFERENCE_SERVICE = "inference.GRPCInferenceService"


class Health(health_pb2_grpc.HealthServicer):
    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def Check(self, request: Any, context: Rpc) -> Any:
        # "" asks about the server as a whole; the one service it serves answers the same.
        if request.service not in ("", INFERENCE_SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{request.service}'")
        ready = not self._service.not_ready_reasons()
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse(status=status)
