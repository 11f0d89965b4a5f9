"""The OpenAI embeddings API: ``POST /v1/embeddings`` and ``GET /v1/models``, for models that take text.

Served by the same service as the V2 route (routing, validation, cache, batcher, telemetry, keys): a request's texts
are queued as requests of at most the model's ``max_batch_size`` each, so a list of 2,048 texts batches like the
same texts sent one by one. Errors leave in OpenAI's shape (:mod:`app.api.error_responses`).
"""

import asyncio
import base64
import time
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import ContextDep
from app.context import AppContext
from app.errors import InvalidRequest
from app.protocol.codec import DecodedRequest, Tensor
from app.protocol.schemas import RequestOutput
from app.repository.registry import Variant

router = APIRouter(tags=["openai"])

MAX_INPUTS = 2048
"""Texts in one request, as OpenAI's API allows."""


class InvalidParameter(InvalidRequest):
    """A 400 that names the request field at fault (OpenAI's ``param``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    input: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    """One text or a list of texts; token arrays are refused (the model tokenizes its text itself)."""
    encoding_format: Literal["float", "base64"] = "float"
    """base64: each embedding as the base64 of its little-endian float32 values (what the openai client asks for)."""
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    """Accepted for compatibility; not used."""


@router.post("/v1/embeddings", summary="Embeddings of texts (OpenAI's embeddings API)")
async def embeddings(context: ContextDep, body: EmbeddingsRequest) -> Response:
    texts = _texts(body.input)
    variant = context.service.resolve(body.model, None)
    text_input, embedding, count = _text_model(variant)
    width = next(spec.shape[-1] for spec in variant.manifest.outputs if spec.name == embedding)
    if body.dimensions is not None and body.dimensions != width:
        raise InvalidParameter(
            f"model '{body.model}' cannot shorten its embeddings: it gives {width} dimensions, "
            f"'dimensions' asked for {body.dimensions}",
            "dimensions",
        )
    step = max(1, variant.manifest.batching.max_batch_size)
    parts = [texts[start : start + step] for start in range(0, len(texts), step)]
    outputs = [embedding] if count is None else [embedding, count]
    answers = await asyncio.gather(*(_embed(context, variant, part, text_input, outputs) for part in parts))
    vectors = np.concatenate([answer[embedding] for answer in answers])
    tokens = 0 if count is None else int(sum(int(answer[count].sum()) for answer in answers))
    document = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, body.encoding_format)}
            for index, vector in enumerate(vectors)
        ],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("/v1/models", summary="The models (OpenAI's models API)")
async def list_models(context: ContextDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model(context, entry.name) for entry in context.registry.models()]}


@router.get("/v1/models/{model}", summary="One model (OpenAI's models API)")
async def get_model(context: ContextDep, model: str) -> dict[str, Any]:
    context.registry.get(model)  # 404 for an unknown model
    return _model(context, model)


def _model(context: AppContext, name: str) -> dict[str, Any]:
    folder = context.registry.model_folder(name)
    created = int(folder.stat().st_mtime) if folder is not None and folder.exists() else int(time.time())
    return {"id": name, "object": "model", "created": created, "owned_by": "servometer"}


def _texts(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    given = [value] if isinstance(value, str) else value
    if not given:
        raise InvalidParameter("'input' is an empty list; send at least one text", "input")
    texts = [text for text in given if isinstance(text, str)]
    if not texts or len(texts) != len(given):
        raise InvalidParameter("'input' must be a text or a list of texts; token arrays are not accepted", "input")
    if len(texts) > MAX_INPUTS:
        raise InvalidParameter(f"'input' holds {len(texts)} texts, at most {MAX_INPUTS} are allowed", "input")
    empty = [index for index, text in enumerate(texts) if not text.strip()]
    if empty:
        raise InvalidParameter(f"'input' must not hold empty texts; text {empty[0]} is empty", "input")
    return texts


def _text_model(variant: Variant) -> tuple[str, str, str | None]:
    """The model's text input, its embedding output and its token count output (None if it has none)."""
    manifest = variant.manifest
    tokenize = next((step for step in manifest.steps.before if step.kind == "tokenize"), None)
    if tokenize is None:
        raise InvalidParameter(f"model '{manifest.name}' does not take text; its inputs are tensors", "model")
    evaluation = manifest.evaluation
    floats = [spec.name for spec in manifest.outputs if spec.datatype.startswith("FP") and len(spec.shape) == 2]
    embedding = evaluation.output if evaluation is not None and evaluation.task == "embedding" else None
    if embedding is None and not floats:
        raise InvalidParameter(f"model '{manifest.name}' has no embedding output", "model")
    count = tokenize.count if any(spec.name == tokenize.count for spec in manifest.outputs) else None
    return tokenize.input, embedding or floats[0], count


async def _embed(
    context: AppContext, variant: Variant, texts: list[str], text_input: str, outputs: list[str]
) -> dict[str, np.ndarray]:
    array = np.empty(len(texts), dtype=np.object_)
    array[:] = [text.encode() for text in texts]
    request = DecodedRequest(None, {}, [Tensor(text_input, "BYTES", array)], [RequestOutput(name=n) for n in outputs])
    with context.metrics.for_variant(variant.model_name, variant.name).answering():
        result = await context.service.infer(variant, request)
    return {name: array for name, array, _ in result.outputs}


def _encoded(vector: np.ndarray, encoding: str) -> np.ndarray | str:
    if encoding == "float":
        return vector
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()
