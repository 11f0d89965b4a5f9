"""The gRPC server, started beside uvicorn on the same event loop, so one set of batchers serves both transports."""

import logging

import grpc
from grpc_health.v1 import health_pb2_grpc
from tritonclient.grpc import service_pb2_grpc

from app.context import AppContext
from app.grpc_api.authorization import KeyInterceptor
from app.grpc_api.health_service import Health
from app.grpc_api.servicer import InferenceServicer
from app.keys import KeyCheck

log = logging.getLogger(__name__)


async def start_grpc(context: AppContext, keys: KeyCheck) -> grpc.aio.Server:
    """Serve gRPC on ``settings.host:settings.grpc_port``; raises RuntimeError if the port cannot be bound."""
    settings = context.settings
    options = [
        # grpcio's default receive limit is 4 MiB: the HTTP body limit instead, unless told otherwise.
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes or settings.max_request_bytes),
        ("grpc.max_send_message_length", settings.max_response_bytes),
        # Several workers share the port (the kernel spreads connections); one worker alone must fail loudly
        # when another program holds the port, not quietly share it.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]
    server = grpc.aio.server(interceptors=[KeyInterceptor(keys)], options=options)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(context), server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(context.service), server)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot serve gRPC on {address} (SERVOMETER_GRPC_PORT): {exc}") from None
    await server.start()
    log.info("gRPC: serving the Open Inference Protocol on %s", address)
    return server
