"""series_math against scalar references written from PromQL's documented semantics: histogram_quantile over
cumulative buckets, increase/rate over a window starting at the last sample at or before it, avg_over_time over
the left-open range (t - window, t]."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.telemetry.series_math import average, increase, quantile, rate, ratio, starts

INF = math.inf
NAN = math.nan
properties = settings(deadline=None, max_examples=150)


def reference_histogram_quantile(q: float, bounds: list[float], cumulative: list[float]) -> float:
    """Prometheus' bucketQuantile, one row at a time."""
    total = cumulative[-1]
    if total == 0 or len(bounds) < 2:
        return NAN
    rank = q * total
    chosen = next((i for i in range(len(bounds) - 1) if cumulative[i] >= rank), len(bounds) - 1)
    if math.isinf(bounds[chosen]):
        return bounds[-2]
    start, below = (0.0, 0.0) if chosen == 0 else (bounds[chosen - 1], cumulative[chosen - 1])
    return start + (bounds[chosen] - start) * (rank - below) / (cumulative[chosen] - below)


def reference_start(times: np.ndarray, index: int, window_s: float) -> int:
    """The last sample at or before t - window, else the first one."""
    earlier = [j for j in range(index + 1) if times[j] <= times[index] - window_s]
    return earlier[-1] if earlier else 0


bounds_strategy = st.lists(
    st.floats(min_value=1e-4, max_value=1e4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=10,
    unique=True,
).map(lambda finite: [*sorted(finite), INF])
quantiles = st.one_of(st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]), st.floats(min_value=1e-6, max_value=1.0))


@st.composite
def jittered_times(draw, max_size: int = 40) -> np.ndarray:
    """Roughly one second apart: either exactly on a half-second grid (so windows end on samples) or jittered."""
    size = draw(st.integers(min_value=1, max_value=max_size))
    step = st.one_of(st.sampled_from([0.5, 1.0, 1.5]), st.floats(min_value=0.6, max_value=1.4))
    steps = draw(st.lists(step, min_size=size, max_size=size))
    times: np.ndarray = np.cumsum(steps) + draw(st.sampled_from([0.0, 1.7e9]))
    return times


windows = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0, 10.0, 1e3]), st.floats(min_value=1e-3, max_value=60.0))


@properties
@given(q=quantiles, bounds=bounds_strategy, data=st.data())
def test_quantile_matches_prometheus_histogram_quantile_on_any_buckets(q, bounds, data):
    rows = data.draw(st.integers(min_value=1, max_value=6))
    increments = [
        data.draw(st.lists(st.integers(0, 20), min_size=len(bounds), max_size=len(bounds))) for _ in range(rows)
    ]
    per_second = data.draw(st.sampled_from([1.0, 1 / 3, 0.1, 7.5]))
    buckets = np.cumsum(np.asarray(increments, dtype=float), axis=1) * per_second
    expected = [reference_histogram_quantile(q, bounds, list(row)) for row in buckets]
    np.testing.assert_allclose(quantile(q, bounds, buckets), expected, rtol=1e-9, equal_nan=True)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound_and_empty_rows_are_nan():
    buckets = np.array([[1.0, 2.0, 10.0], [0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    np.testing.assert_array_equal(quantile(0.99, [0.1, 0.5, INF], buckets), [0.5, NAN, 0.1 * 0.99])


def test_quantile_interpolates_from_zero_in_the_first_bucket():
    assert quantile(0.5, [2.0, 4.0, INF], np.array([[10.0, 10.0, 10.0]]))[0] == pytest.approx(1.0)


def test_quantile_of_only_an_inf_bucket_or_no_bounds_is_nan():
    assert np.isnan(quantile(0.5, [INF], np.array([[3.0]]))).all()
    assert np.isnan(quantile(0.5, [], np.zeros((2, 0)))).all()
    assert quantile(0.5, [1.0, INF], np.zeros((0, 2))).shape == (0,)


def test_quantile_of_rows_where_the_series_did_not_exist_is_nan():
    assert np.isnan(quantile(0.5, [1.0, INF], np.array([[NAN, NAN]]))).all()


@properties
@given(times=jittered_times(), window_s=windows)
def test_starts_is_the_last_sample_at_or_before_the_window_start_else_the_first(times, window_s):
    expected = [reference_start(times, i, window_s) for i in range(len(times))]
    np.testing.assert_array_equal(starts(times, window_s), expected)


@properties
@given(times=jittered_times(), window_s=windows, data=st.data())
def test_increase_and_rate_match_a_loop_over_the_samples(times, window_s, data):
    steps = data.draw(st.lists(st.integers(0, 50), min_size=len(times), max_size=len(times)))
    values = np.cumsum(np.asarray(steps, dtype=float))
    grown, span = increase(times, values, window_s)
    per_second = rate(times, values, window_s)
    for i in range(len(times)):
        j = reference_start(times, i, window_s)
        assert grown[i] == values[i] - values[j]
        assert span[i] == times[i] - times[j]
        if j == i:
            assert math.isnan(per_second[i])
        else:
            assert per_second[i] == pytest.approx((values[i] - values[j]) / (times[i] - times[j]), rel=1e-12)


@properties
@given(times=jittered_times(), window_s=windows, columns=st.integers(1, 4), data=st.data())
def test_rate_of_several_columns_is_each_columns_rate(times, window_s, columns, data):
    steps = data.draw(st.lists(st.integers(0, 9), min_size=len(times) * columns, max_size=len(times) * columns))
    values = np.cumsum(np.asarray(steps, dtype=float).reshape(len(times), columns), axis=0)
    together = rate(times, values, window_s)
    assert together.shape == values.shape
    for column in range(columns):
        np.testing.assert_array_equal(together[:, column], rate(times, values[:, column], window_s))


def test_a_window_longer_than_the_history_starts_at_the_first_sample():
    times = np.array([100.0, 101.2, 101.9, 103.1])
    values = np.array([5.0, 7.0, 8.0, 12.0])
    grown, span = increase(times, values, 900.0)
    np.testing.assert_array_equal(grown, [0.0, 2.0, 3.0, 7.0])
    np.testing.assert_allclose(span, [0.0, 1.2, 1.9, 3.1])
    np.testing.assert_allclose(rate(times, values, 900.0), [NAN, 2 / 1.2, 3 / 1.9, 7 / 3.1], equal_nan=True)
    np.testing.assert_allclose(average(times, values, 900.0), [5.0, 6.0, 20 / 3, 8.0])


def test_the_first_sample_has_no_rate():
    assert math.isnan(rate(np.array([1.0]), np.array([3.0]), 10.0)[0])


@properties
@given(times=jittered_times(), window_s=windows, data=st.data())
def test_average_is_avg_over_time_of_the_left_open_window(times, window_s, data):
    values = np.asarray(data.draw(st.lists(st.floats(0, 1e3), min_size=len(times), max_size=len(times))))
    means = average(times, values, window_s)
    for i in range(len(times)):
        inside = [values[j] for j in range(i + 1) if times[j] > times[i] - window_s]
        assert means[i] == pytest.approx(sum(inside) / len(inside), rel=1e-9, abs=1e-9)


def test_average_leaves_out_a_sample_exactly_a_window_back():
    times = np.arange(10.0)
    values = np.arange(10.0) ** 2
    # At t=5 with a 3 s window: samples at 3, 4 and 5; the one at 2 (exactly 3 s back) is PromQL's range start.
    assert average(times, values, 3.0)[5] == pytest.approx((9 + 16 + 25) / 3)
    assert average(times, values, 3.5)[5] == pytest.approx((4 + 9 + 16 + 25) / 4)


def test_average_leaves_out_samples_where_the_series_did_not_exist():
    times = np.arange(4.0)
    means = average(times, np.array([NAN, NAN, 4.0, 4.0]), 10.0)
    np.testing.assert_array_equal(means, [NAN, NAN, 4.0, 4.0])


@given(
    numerator=st.lists(st.floats(0, 1e6), min_size=1, max_size=20),
    denominator=st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0, 1e5]), min_size=20, max_size=20),
)
def test_ratio_is_nan_where_the_denominator_is_zero(numerator, denominator):
    top, bottom = np.asarray(numerator), np.asarray(denominator[: len(numerator)])
    result = ratio(top, bottom)
    for value, n, d in zip(result, top, bottom, strict=True):
        assert math.isnan(value) if d == 0 else value == n / d
