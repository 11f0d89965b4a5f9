"""``servometer`` on uvicorn's own httptools protocol, without the connection limits of
:mod:`app.api.connections`: only to measure what those limits cost per request (``python -m bench.connections``).

Run like the CLI (``python -m bench.plain_connections serve ...``). Not for serving: silent connections, endless
headers and connection floods are then unbounded again.
"""

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import cli

vars(cli)["GuardedHttpProtocol"] = HttpToolsProtocol  # what `servometer serve` hands uvicorn

if __name__ == "__main__":
    cli.main()
