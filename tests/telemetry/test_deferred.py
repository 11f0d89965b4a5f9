"""The deferred series move exactly what the request path added into prometheus_client's series on flush. The
histogram adapter writes prometheus_client's private bucket and sum values: this test pins that to the versions
the project allows, and fails the day they change."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.telemetry.deferred import DeferredCount, DeferredHistogram


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def test_a_deferred_histogram_equals_observing_each_value_directly():
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "h", ["v"], buckets=(0.001, 0.01, 0.1), registry=registry)
    deferred_family = Histogram("deferred_seconds", "h", ["v"], buckets=(0.001, 0.01, 0.1), registry=registry)
    deferred = DeferredHistogram(deferred_family.labels("x"))
    values = [0.0005, 0.001, 0.002, 0.05, 0.1, 3.0, 0.01]
    for value in values:
        direct.labels("x").observe(value)
        deferred.observe(value)
    deferred.flush()
    deferred.flush()  # a second flush adds nothing
    for bound in ("0.001", "0.01", "0.1", "+Inf"):
        labels = {"v": "x", "le": bound}
        assert _value(registry, "deferred_seconds_bucket", labels) == _value(registry, "direct_seconds_bucket", labels)
    assert _value(registry, "deferred_seconds_sum", {"v": "x"}) == sum(values)
    assert _value(registry, "deferred_seconds_count", {"v": "x"}) == len(values)


def test_a_deferred_count_adds_on_flush_only():
    registry = CollectorRegistry()
    counter = DeferredCount(Counter("things", "c", ["v"], registry=registry).labels("x"))
    counter.value += 3
    assert _value(registry, "things_total", {"v": "x"}) == 0
    counter.flush()
    counter.flush()
    assert _value(registry, "things_total", {"v": "x"}) == 3
