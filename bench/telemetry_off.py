"""``servometer`` with the request-path telemetry switched off: only to measure what that telemetry costs.

Run like the CLI (``python -m bench.telemetry_off serve ...``); every per-request and per-batch metric and
statistics update becomes a no-op. Not for serving: /metrics then shows no per-request series.
"""

from typing import Any

from app.cli import main
from app.telemetry.views import VariantMetrics


def _nothing(*_: Any, **__: Any) -> None:
    return None


for _name in ("observe_request", "cache_lookup", "queue_depth", "dispatched", "computed"):
    setattr(VariantMetrics, _name, _nothing)

if __name__ == "__main__":
    main()
