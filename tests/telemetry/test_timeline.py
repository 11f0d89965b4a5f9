"""The timeline reads prometheus_client's private value holders (``_metrics``, ``_value``, ``_buckets``, ``_sum``,
``_upper_bounds``): every sample here is held to what the exposition renders, so an upgrade that moves them fails
here rather than on the live page. Also: new series, the ring's capacity, ``since`` and the histogram index."""

import math
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from app.live.documents import SAMPLED, sampled_timeline
from app.telemetry.metrics import Metrics
from app.telemetry.timeline import Timeline

BOUNDS = (0.005, 0.1, 1, 2.5)
NAN = math.nan


@dataclass(frozen=True)
class Drift:
    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float


def families() -> tuple[Counter, Gauge, Histogram]:
    registry = CollectorRegistry()
    return (
        Counter("jobs", "Jobs.", ["queue", "kind"], registry=registry),
        Gauge("depth", "Depth.", ["queue"], registry=registry),
        Histogram("wait_seconds", "Wait.", ["queue"], buckets=BOUNDS, registry=registry),
    )


def assert_timeline_matches_exposition(timeline: Timeline, sampled: list[MetricWrapperBase]) -> None:
    """Every sample the exposition shows (but _created and _count) is the timeline's latest value for its key,
    and the timeline holds no series the exposition lacks."""
    exposed: dict[str, set[tuple[str, ...]]] = {}
    for family in sampled:
        for metric in family.collect():
            for sample in metric.samples:
                if sample.name.endswith(("_created", "_count")):
                    continue
                key = (sample.name, *sample.labels.values())
                _, values = timeline.read([key])
                assert values[-1, 0] == sample.value, key
                exposed.setdefault(sample.name, set()).add(key[1:])
    assert exposed, "nothing was exposed"
    for name, label_sets in exposed.items():
        assert sorted(timeline.label_sets(name)) == sorted(label_sets), name


def test_every_exposed_sample_of_counters_gauges_and_histograms_is_read_back():
    jobs, depth, wait = families()
    jobs.labels("fast", "batch").inc(3)
    jobs.labels("slow", "single").inc(0.5)
    depth.labels("fast").set(7)
    depth.labels("slow").set(-2.5)
    for seconds in (0.001, 0.004, 0.05, 0.3, 2.0, 9.0):
        wait.labels("fast").observe(seconds)
    wait.labels("slow")
    timeline = Timeline([jobs, depth, wait])
    timeline.sample(10.0)
    assert_timeline_matches_exposition(timeline, [jobs, depth, wait])
    jobs.labels("fast", "batch").inc()
    depth.labels("fast").dec(4)
    wait.labels("slow").observe(0.2)
    timeline.sample(11.0)
    assert_timeline_matches_exposition(timeline, [jobs, depth, wait])
    _, values = timeline.read([("jobs_total", "fast", "batch"), ("wait_seconds_bucket", "fast", "+Inf")])
    np.testing.assert_array_equal(values, [[3.0, 6.0], [4.0, 6.0]])


def test_the_served_metrics_are_read_back_as_the_exposition_shows_them():
    metrics = Metrics()
    timeline = sampled_timeline(metrics)
    for model, variant, ready in (("digits", "v1", True), ("digits", "v2", False), ("text", "main", True)):
        metrics.register_variant(model, variant, ready)
        bound = metrics.for_variant(model, variant)
        bound.set_pricing(False, 0.002)
        bound.queue_capacity.set(64)
    metrics.set_objectives("digits", 0.25, 0.02, 1.5, 3.0, 0.2, 0.9)
    timeline.sample(100.0)
    assert_timeline_matches_exposition(timeline, [getattr(metrics, name) for name in SAMPLED])
    for step, (model, variant) in enumerate((("digits", "v1"), ("digits", "v1"), ("text", "main"), ("digits", "v2"))):
        bound = metrics.for_variant(model, variant)
        bound.observe_request("success" if step % 2 == 0 else "server_error", 0.003 * (step + 1) ** 3)
        bound.dispatched("full" if step else "delay", step + 1, [0.001 * step, 0.02])
        bound.computed(step + 1, 2, 0.01 * (step + 1), 0.001, 0.001)
        bound.queue_depth(step)
        bound.dropped("queue_full")
    metrics.set_drift("digits", "v1", 200, [Drift("pixels", 0.31, 0.2, 0.01), Drift("prediction", 0.05, 0.1, 0.5)])
    metrics.set_live("digits", "v1", True, 60, 0.92, 0.9)
    metrics.flush()
    timeline.sample(101.0)
    assert_timeline_matches_exposition(timeline, [getattr(metrics, name) for name in SAMPLED])
    bounds, keys = timeline.histogram("servometer_request_duration_seconds", "digits", "v1")
    assert bounds == sorted(bounds)
    assert bounds[-1] == math.inf
    assert len(bounds) == len(keys) > 1
    _, cumulative = timeline.read(keys)
    assert cumulative[-1, -1] == 2.0
    assert (np.diff(cumulative[-1]) >= 0).all()


def test_series_created_after_the_first_sample_get_columns_and_read_nan_before():
    jobs, depth, wait = families()
    depth.labels("a").set(1)
    timeline = Timeline([jobs, depth, wait])
    timeline.sample(1.0)
    depth.labels("b").set(2)
    wait.labels("b").observe(0.01)
    for index in range(300):  # past the first 256 columns the value array widens, keeping what it held
        jobs.labels(f"q{index}", "k").inc(index)
    timeline.sample(2.0)
    keys = [("depth", "a"), ("depth", "b"), ("wait_seconds_bucket", "b", "0.1"), ("jobs_total", "q299", "k")]
    times, values = timeline.read(keys)
    np.testing.assert_array_equal(times, [1.0, 2.0])
    np.testing.assert_array_equal(values, [[1.0, NAN, NAN, NAN], [1.0, 2.0, 1.0, 299.0]])
    assert_timeline_matches_exposition(timeline, [jobs, depth, wait])


def test_unknown_keys_read_nan():
    _, depth, _ = families()
    depth.labels("a").set(1)
    timeline = Timeline([depth])
    timeline.sample(1.0)
    _, values = timeline.read([("depth", "nowhere"), ("nothing",)])
    assert values.shape == (1, 2)
    assert np.isnan(values).all()


def test_the_ring_keeps_only_capacity_samples_in_time_order():
    _, depth, _ = families()
    timeline = Timeline([depth], capacity=5)
    for second in range(1, 13):
        depth.labels("a").set(second * 10)
        timeline.sample(float(second))
    times, values = timeline.read([("depth", "a")])
    np.testing.assert_array_equal(times, [8.0, 9.0, 10.0, 11.0, 12.0])
    np.testing.assert_array_equal(values[:, 0], [80.0, 90.0, 100.0, 110.0, 120.0])
    assert timeline.taken == 12


def test_read_since_starts_at_the_last_sample_at_or_before_it():
    _, depth, _ = families()
    timeline = Timeline([depth], capacity=5)
    depth.labels("a").set(1)
    for second in range(10, 22):
        timeline.sample(second + 0.25)
    assert list(timeline.read([], since=19.5)[0]) == [19.25, 20.25, 21.25]
    assert list(timeline.read([], since=19.25)[0]) == [19.25, 20.25, 21.25]
    assert list(timeline.read([], since=19.0)[0]) == [18.25, 19.25, 20.25, 21.25]
    assert list(timeline.read([], since=99.0)[0]) == [21.25]
    # Before the oldest sample kept: everything kept.
    assert list(timeline.read([], since=0.0)[0]) == [17.25, 18.25, 19.25, 20.25, 21.25]


def test_read_of_an_empty_timeline_is_empty():
    _, depth, _ = families()
    times, values = Timeline([depth]).read([("depth", "a")], since=5.0)
    assert times.shape == (0,)
    assert values.shape == (0, 1)


def test_histogram_gives_ascending_bounds_ending_in_inf_and_their_bucket_keys():
    _, _, wait = families()
    wait.labels("q").observe(0.5)
    timeline = Timeline([wait])
    timeline.sample(1.0)
    bounds, keys = timeline.histogram("wait_seconds", "q")
    assert bounds == [0.005, 0.1, 1.0, 2.5, math.inf]
    assert keys == [("wait_seconds_bucket", "q", le) for le in ("0.005", "0.1", "1.0", "2.5", "+Inf")]
    _, values = timeline.read(keys)
    np.testing.assert_array_equal(values[0], [0.0, 0.0, 1.0, 1.0, 1.0])
    assert timeline.histogram("wait_seconds", "elsewhere") == ([], [])


def test_cpu_seconds_grows_with_samples():
    jobs, depth, wait = families()
    for index in range(20):
        jobs.labels(str(index), "k").inc()
        wait.labels(str(index)).observe(index / 10)
    timeline = Timeline([jobs, depth, wait])
    assert timeline.cpu_seconds == 0.0
    spent = [0.0]
    for second in range(200):
        timeline.sample(float(second))
        spent.append(timeline.cpu_seconds)
    assert all(later >= earlier for earlier, later in zip(spent, spent[1:], strict=False))
    assert spent[-1] > 0.0


def test_families_without_labels_are_read_back_too():
    registry = CollectorRegistry()
    lag = Gauge("lag_seconds", "Lag.", registry=registry)
    calls = Counter("calls", "Calls.", registry=registry)
    wait = Histogram("plain_wait_seconds", "Wait.", buckets=BOUNDS, registry=registry)
    lag.set(0.25)
    calls.inc(4)
    wait.observe(0.05)
    timeline = Timeline([lag, calls, wait])
    timeline.sample(1.0)
    assert_timeline_matches_exposition(timeline, [lag, calls, wait])
