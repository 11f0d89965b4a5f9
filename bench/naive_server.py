"""The baseline a user would write by hand: FastAPI + onnxruntime, pydantic-validated JSON, one model call per
request. It also reads the binary tensor extension in the plainest way, so it takes the very same bodies."""

import argparse
from typing import Any

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from bench.sessions import cpu_session

DTYPES = {"FP32": np.float32, "INT64": np.int64}


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float] | list[int] | None = None
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    inputs: list[Tensor]
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


def create_app(model: str, threads: int) -> FastAPI:
    session = cpu_session(model, threads)
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        split = int(header_length) if header_length else len(body)
        parsed = InferRequest.model_validate_json(body[:split])
        feeds, offset = {}, split
        for tensor in parsed.inputs:
            dtype = DTYPES[tensor.datatype]
            if tensor.parameters and "binary_data_size" in tensor.parameters:
                size = tensor.parameters["binary_data_size"]
                feeds[tensor.name] = np.frombuffer(body[offset : offset + size], dtype=dtype).reshape(tensor.shape)
                offset += size
            else:
                feeds[tensor.name] = np.array(tensor.data, dtype=dtype).reshape(tensor.shape)
        names = [output.name for output in session.get_outputs()]
        results = session.run(names, feeds)
        outputs = [
            {
                "name": n,
                "shape": list(r.shape),
                "datatype": "INT64" if r.dtype == np.int64 else "FP32",
                "data": r.reshape(-1).tolist(),
            }
            for n, r in zip(names, results, strict=True)
        ]
        return Response(orjson.dumps({"model_name": name, "outputs": outputs}), media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="path of the .onnx file")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model, args.threads), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
