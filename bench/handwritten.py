"""What a user who cares about speed writes by hand: FastAPI + orjson around the same ONNX Runtime session, one
model call per request, no pydantic, no batching. It reads JSON and the binary tensor extension the plainest way,
so it takes the very same bodies as Servometer, and answers in the same formats.

``python -m bench.handwritten --model FILE --port P``
"""

import argparse
from typing import Any

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.sessions import cpu_session

DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype(np.float32), "INT64": np.dtype(np.int64)}
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def create_app(model: str, threads: int) -> FastAPI:
    session = cpu_session(model, threads)
    names = [output.name for output in session.get_outputs()]
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        split = int(header_length) if header_length else len(body)
        document: dict[str, Any] = orjson.loads(body[:split])
        feeds, offset = {}, split
        for tensor in document["inputs"]:
            dtype = DTYPES[tensor["datatype"]]
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                feeds[tensor["name"]] = np.frombuffer(body, dtype, size // dtype.itemsize, offset).reshape(
                    tensor["shape"]
                )
                offset += size
            else:
                feeds[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
        results = session.run(names, feeds)
        binary = (document.get("parameters") or {}).get("binary_data_output", False)
        if not binary:
            outputs = [
                {"name": n, "datatype": DATATYPES[r.dtype], "shape": r.shape, "data": r.reshape(-1)}
                for n, r in zip(names, results, strict=True)
            ]
            content = orjson.dumps({"model_name": name, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
            return Response(content, media_type="application/json")
        raw = [np.ascontiguousarray(r).tobytes() for r in results]
        described = [
            {"name": n, "datatype": DATATYPES[r.dtype], "shape": r.shape, "parameters": {"binary_data_size": len(b)}}
            for n, r, b in zip(names, results, raw, strict=True)
        ]
        header = orjson.dumps({"model_name": name, "outputs": described})
        return Response(
            header + b"".join(raw),
            media_type="application/octet-stream",
            headers={"inference-header-content-length": str(len(header))},
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="path of the .onnx file")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.model, args.threads), host="127.0.0.1", port=args.port, log_level="warning",
        access_log=False, server_header=False, date_header=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
