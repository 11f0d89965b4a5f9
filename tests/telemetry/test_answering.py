"""VariantMetrics.answering: one request's in-flight count, outcome and latency, however it ends."""

import asyncio
import contextlib

import pytest

from app.errors import InvalidRequest
from app.telemetry.metrics import Metrics


def _outcome(metrics: Metrics, outcome: str) -> float:
    return metrics.sample_value("servometer_requests_total", {"model": "m", "variant": "v", "outcome": outcome}) or 0


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [(None, "success"), (InvalidRequest("bad"), "client_error"), (asyncio.CancelledError(), "client_error"),
     (RuntimeError("bug"), "server_error")],
)  # fmt: skip
def test_each_ending_is_counted_once_with_its_outcome_and_leaves_nothing_in_flight(raised, outcome):
    metrics = Metrics()
    view = metrics.for_variant("m", "v")
    with pytest.raises(type(raised)) if raised is not None else contextlib.nullcontext(), view.answering():
        assert view._in_flight == 1
        if raised is not None:
            raise raised
    view.flush()
    metrics.flush()
    assert _outcome(metrics, outcome) == 1
    assert view._in_flight == 0
