"""The OpenAPI document, with the inference routes that :class:`app.api.infer.InferenceEndpoint` serves
outside FastAPI's router added by hand."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.protocol.schemas import ErrorResponse, InferenceRequest, InferenceResponse

_REF = "#/components/schemas/{model}"


def _operation(summary: str, parameters: list[str]) -> dict[str, Any]:
    errors = {
        "400": "Bad input: the message names the input, what was expected and what came",
        "404": "Unknown model or variant",
        "413": "Body over the configured limit",
        "415": "Unsupported Content-Type or Content-Encoding",
        "503": "Model not ready, or queue full (with Retry-After)",
        "504": "Waited in the queue past its timeout",
    }
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
    return {
        "tags": ["inference"],
        "summary": summary,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in parameters
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model="InferenceRequest")}},
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "Binary tensor extension: JSON header of Inference-Header-Content-Length bytes, "
                    "then the tensors' raw bytes",
                },
            },
        },
        "responses": {
            "200": {
                "description": "Outputs",
                "content": {"application/json": {"schema": {"$ref": _REF.format(model="InferenceResponse")}}},
            },
            **{status: {"description": text, "content": error} for status, text in errors.items()},
        },
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (InferenceRequest, InferenceResponse, ErrorResponse):
                document = model.model_json_schema(ref_template=_REF)
                components.update(document.pop("$defs", {}))
                components[model.__name__] = document
            schema["paths"]["/v2/models/{model}/infer"] = {"post": _operation("Infer (default variant)", ["model"])}
            schema["paths"]["/v2/models/{model}/versions/{version}/infer"] = {
                "post": _operation("Infer with one variant (version number or name)", ["model", "version"])
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
