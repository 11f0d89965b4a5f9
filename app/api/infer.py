"""``POST /v2/models/{model}[/versions/{version}]/infer``: JSON or binary tensors in, the same out.

The body is read raw (not through FastAPI's validation) so tensors go straight into numpy.
"""

import asyncio
import time

from fastapi import APIRouter, Request, Response

from app.api.deps import ContextDep
from app.errors import InvalidRequest, PayloadTooLarge, ServingError, UnsupportedEncoding
from app.protocol import compression
from app.protocol.codec import HEADER_LENGTH, decode_request, encode_response
from app.protocol.schemas import ErrorResponse, InferenceRequest, InferenceResponse

router = APIRouter(tags=["inference"])

_MEDIA_TYPES = {"application/json", "application/octet-stream"}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": InferenceResponse},
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


@router.post(
    "/v2/models/{model}/infer", openapi_extra=_OPENAPI, responses=_RESPONSES, summary="Infer (default variant)"
)
@router.post(
    "/v2/models/{model}/versions/{version}/infer", openapi_extra=_OPENAPI, responses=_RESPONSES, summary="Infer"
)
async def infer(
    request: Request,
    context: ContextDep,
    model: str,
    version: str | None = None,
) -> Response:
    started = time.perf_counter()
    variant = context.service.resolve(model, version)
    outcome = "server_error"
    try:
        body = await read_body(request, context.settings.max_request_bytes)
        decoded = decode_request(body, _header_length(request))
        client_gone = asyncio.ensure_future(_disconnected(request))
        try:
            result = await context.service.infer(variant, decoded, client_gone)
        finally:
            client_gone.cancel()
        encoded = encode_response(
            model_name=variant.model_name,
            model_version=str(variant.version),
            request_id=decoded.id,
            outputs=result.outputs,
            parameters={"variant": variant.name},
        )
        headers = {**encoded.headers, "servometer-variant": variant.name}
        content = encoded.body
        encoding = compression.choose_encoding(request.headers.get("accept-encoding"))
        if encoding:
            content = compression.compress(content, encoding)
            headers["content-encoding"] = encoding
        outcome = "success"
        return Response(content=content, headers=headers)
    except ServingError as exc:
        outcome = exc.outcome
        raise
    finally:
        context.metrics.observe_request(variant.model_name, variant.name, outcome, time.perf_counter() - started)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body after Content-Encoding, refused with 413 as soon as it passes ``limit`` bytes."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _MEDIA_TYPES:
        raise UnsupportedEncoding(
            f"Content-Type '{media_type}' is not supported; send application/json or application/octet-stream"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return compression.decompress(b"".join(chunks), request.headers.get("content-encoding"), limit)


async def _disconnected(request: Request) -> None:
    """Completes when the client hangs up; with the body read, the next ASGI message can only be that."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _header_length(request: Request) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidRequest(f"Inference-Header-Content-Length must be a non-negative integer, got '{value}'")
    return int(value)
