"""The floor: a bare ASGI function under the same uvicorn as Servometer (httptools, uvloop, no Date or Server
header, no access log), reading each request's body and answering a fixed response, by default the very bytes
Servometer answers the same request with. Whatever a server does per request beyond this is its own work.

``python bench/bare_asgi.py --response FILE --content-type TYPE [--header-length N] --port P``
"""

import argparse
from pathlib import Path
from typing import Any

import uvicorn


def create_app(body: bytes, content_type: str, header_length: int | None) -> Any:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if header_length is not None:
        headers.append((b"inference-header-content-length", str(header_length).encode()))
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    answer = {"type": "http.response.body", "body": body}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        while message.get("more_body", False):
            message = await receive()
        await send(start)
        await send(answer)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--response", type=Path, required=True, help="the response body to answer with")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--header-length", type=int, help="Inference-Header-Content-Length of a binary response")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    app = create_app(args.response.read_bytes(), args.content_type, args.header_length)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", log_level="warning",
        access_log=False, server_header=False, date_header=False, lifespan="off",
    )  # fmt: skip


if __name__ == "__main__":
    main()
