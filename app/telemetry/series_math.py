"""What PromQL would compute, on a :class:`app.telemetry.timeline.Timeline`'s samples: rates, increases over a
window, ``avg_over_time`` and ``histogram_quantile``, so the live page shows the figures the dashboards and alert
rules do. Every function takes the sample times ``(n,)`` and cumulative values ``(n, ...)`` and returns one value
per sample; NaN where there is nothing to compute (no earlier sample, no observation in the window)."""

import numpy as np


def starts(times: np.ndarray, window_s: float) -> np.ndarray:
    """For each sample, the index of the sample a window of ``window_s`` before it starts at: the last one at or
    before ``t - window_s``, or the first sample while less history is kept (the window is then shorter)."""
    return np.maximum(np.searchsorted(times, times - window_s, side="right") - 1, 0)


def increase(times: np.ndarray, values: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's increase over the window before it, and the seconds that window really spans (0 for the
    first sample). Counters here never reset: a worker's series live as long as it does."""
    first = starts(times, window_s)
    return values - values[first], times - times[first]


def rate(times: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """Per-second increase over the window before each sample (``rate(x[window])``)."""
    grown, span = increase(times, values, window_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(_span(span, values.ndim) > 0, grown / _span(span, values.ndim), np.nan)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0 (PromQL has no sample there)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def average(times: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """``avg_over_time(x[window])``: the mean of the samples in the window ending at each sample (NaN samples, where
    the series did not exist yet, are not samples)."""
    first = starts(times, window_s)
    present = ~np.isnan(values)
    totals = np.concatenate([np.zeros(1), np.cumsum(np.where(present, values, 0.0))])
    seen = np.concatenate([np.zeros(1), np.cumsum(present)])
    # A sample exactly window_s back is PromQL's range start, which it leaves out; an earlier one, too.
    begin = np.where(times[first] <= times - window_s, first + 1, first)
    end = np.arange(len(times)) + 1
    begin = np.minimum(begin, end - 1)
    return ratio(totals[end] - totals[begin], seen[end] - seen[begin])


def quantile(q: float, bounds: list[float], buckets: np.ndarray) -> np.ndarray:
    """``histogram_quantile(q, ...)`` of cumulative bucket counts ``(n, len(bounds))`` (``inf`` the last bound):
    linear within the bucket the rank falls in, from 0 for the first bucket; the highest finite bound when the
    rank falls in the ``inf`` bucket; NaN where nothing was observed."""
    if not bounds or buckets.shape[0] == 0:
        return np.full(buckets.shape[0], np.nan)
    upper = np.asarray(bounds, dtype=float)
    lower = np.concatenate([[0.0], upper[:-1]])
    totals = buckets[:, -1]
    rank = q * totals
    chosen = np.argmax(buckets >= rank[:, None], axis=1)
    rows = np.arange(len(totals))
    below = np.where(chosen > 0, buckets[rows, chosen - 1], 0.0)
    inside = buckets[rows, chosen] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(inside > 0, (rank - below) / inside, 1.0)
    finite_top = upper[-2] if len(upper) > 1 else np.nan
    values = np.where(np.isinf(upper[chosen]), finite_top, lower[chosen] + (upper[chosen] - lower[chosen]) * fraction)
    return np.where(totals > 0, values, np.nan)


def _span(span: np.ndarray, ndim: int) -> np.ndarray:
    return span if ndim == 1 else span.reshape(-1, *([1] * (ndim - 1)))
