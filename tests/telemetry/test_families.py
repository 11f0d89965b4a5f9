"""The metric family table follows Prometheus' naming conventions, and every family in it is exported."""

import re

import pytest

from app.telemetry.families import FAMILIES, Family
from app.telemetry.metrics import Metrics

# Units that are not base units (Prometheus: seconds, bytes, ...), as a name's final unit.
NON_BASE_UNITS = ("milliseconds", "ms", "microseconds", "us", "minutes", "hours", "kilobytes", "megabytes", "percent")


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
def test_every_family_name_follows_prometheus_naming(family: Family):
    assert re.fullmatch(r"servometer_[a-z0-9]+(_[a-z0-9]+)*", family.name), family.name
    # prometheus_client appends _total to counters on exposition; a name that already has it would say it twice.
    assert not family.name.endswith("_total"), family.name
    assert family.name.rsplit("_", 1)[-1] not in NON_BASE_UNITS, family.name
    if "throughput" in family.name:
        assert family.name.endswith("_per_second"), family.name
    if family.kind == "histogram":
        in_seconds = family.buckets in ("latency", "cache")
        assert in_seconds == family.name.endswith("_seconds"), f"{family.name}: buckets {family.buckets}"
    else:
        assert family.buckets is None, family.name
    assert family.help.endswith((".", ")")), family.name
    assert all(re.fullmatch(r"[a-z_]+", label) for label in family.labels), family.labels


def test_names_and_attributes_are_declared_once():
    assert len({family.name for family in FAMILIES}) == len(FAMILIES)
    assert len({family.attribute for family in FAMILIES}) == len(FAMILIES)


def test_every_family_is_exported_with_its_type_and_help():
    metrics = Metrics()
    exposition = metrics.render().decode()
    for family in FAMILIES:
        exported = family.name + ("_total" if family.kind == "counter" else "")
        assert f"# HELP {exported} " in exposition, exported
        assert f"# TYPE {exported} {family.kind}" in exposition, exported
