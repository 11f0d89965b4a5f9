"""Every error leaves as ``{"error": "..."}`` with its status: tritonclient reads exactly that key. On the OpenAI
routes (``/v1/...``) it leaves in OpenAI's shape instead, ``{"error": {"message", "type", "param", "code"}}``, which
the openai client reads."""

from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from app.errors import ServingError


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


OPENAI_PREFIX = "/v1/"


def openai_error_body(status: int, message: str, param: str | None = None) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = {401: "invalid_api_key", 404: "model_not_found"}.get(status)
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, request: Request | None = None
) -> Response:
    """The error in the route's shape: OpenAI's on ``/v1/`` routes, ``{"error": message}`` everywhere else."""
    if request is not None and request.url.path.startswith(OPENAI_PREFIX):
        body = openai_error_body(status, message, getattr(request.state, "error_param", None))
    else:
        body = error_body(message)
    return Response(body, status, headers, media_type="application/json")


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    request.state.error_param = getattr(exc, "param", None)
    return error_response(exc.status, exc.message, exc.headers, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers, request)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in errors)
    # OpenAI's param names the body's field at fault: the location's part after "body".
    location: list[object] = list(errors[0]["loc"]) if errors else []
    request.state.error_param = str(location[1]) if len(location) > 1 else None
    return error_response(400, f"invalid request: {problems}", request=request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug's details stay in the log (Starlette logs the traceback); the client learns only that it happened.
    return error_response(500, "internal server error", request=request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
