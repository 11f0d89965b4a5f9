"""The live page's checks are the alert rules' conditions: held here to deploy/prometheus/rules (names, ``for``,
windows, fixed lines, objective gauges) and judge() to Prometheus' pending/firing arithmetic."""

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.telemetry.objective_checks import (
    CHECK_BY_ALERT,
    CHECKS,
    ERROR_OUTCOMES,
    HISTORY_NEEDED_S,
    LIVE_ACCURACY_MIN_SAMPLES,
    REJECTED_REASONS,
    Check,
    Verdict,
    judge,
)

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
NAN = math.nan


def seconds(duration: str) -> float:
    """A Prometheus duration (5m, 90s, 1h30m) in seconds."""
    parts = re.findall(r"(\d+)([smhdw])", duration)
    assert parts, duration
    assert "".join(n + u for n, u in parts) == duration, duration
    return float(sum(int(number) * UNITS[unit] for number, unit in parts))


def rules(name: str, kind: str) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((RULES / name).read_text())["groups"]
    return {rule[kind]: rule for group in groups for rule in group["rules"] if kind in rule}


ALERTS = rules("servometer-alerts.yml", "alert")
RECORDINGS = rules("servometer-recording.yml", "record")


def windows_of(expr: str) -> set[float]:
    """The range windows an expression looks over: its own range selectors (not those shifted by ``offset``, which
    look at another time) and those of the recording rules it uses."""
    found = {seconds(r) for r in re.findall(r"\[(\w+)\](?!\s*offset)", expr)}
    for name in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", expr):
        assert name in RECORDINGS, f"{name} is not a recording rule"
        recorded = {seconds(r) for r in re.findall(r"\[(\w+)\]", RECORDINGS[name]["expr"])}
        suffix = re.search(r"(\d+[smhdw])$", name)
        assert suffix, f"{name} names no window"
        assert recorded == {seconds(suffix.group(1))}, f"{name}: its name and expr disagree on the window"
        found |= recorded
    return found


def comparisons(expr: str) -> list[tuple[str, float]]:
    """Every comparison of the expression with a number: (operator, number)."""
    return [(op, float(number)) for op, number in re.findall(r"(>=|<=|==|>|<)\s*(\d+(?:\.\d+)?)(?![\w.])", expr)]


def test_check_alerts_are_unique_and_carry_a_threshold():
    assert len(CHECK_BY_ALERT) == len(CHECKS)
    for check in CHECKS:
        assert check.objective is not None or check.default is not None, check.alert


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.alert)
def test_every_check_mirrors_an_alert_rule_with_its_for(check: Check):
    assert check.alert in ALERTS
    assert check.for_s == seconds(ALERTS[check.alert]["for"])


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.alert)
def test_every_check_looks_over_the_window_its_rule_does(check: Check):
    found = windows_of(ALERTS[check.alert]["expr"])
    assert found == ({check.window_s} if check.window_s > 0 else set())


@pytest.mark.parametrize("check", [c for c in CHECKS if c.objective is None], ids=lambda check: check.alert)
def test_fixed_thresholds_are_the_rules_own_line(check: Check):
    found = comparisons(ALERTS[check.alert]["expr"])
    if check.unit == "bool":
        # A 0/1 gauge: the rule's `== 0` is the check's `< 1`.
        assert (check.above, check.default, found) == (False, 1.0, [("==", 0.0)])
    else:
        assert (">" if check.above else "<", check.default) in found


@pytest.mark.parametrize("check", [c for c in CHECKS if c.objective is not None], ids=lambda check: check.alert)
def test_objective_checks_compare_with_the_models_gauge_the_rule_does(check: Check):
    expr = ALERTS[check.alert]["expr"]
    assert check.objective is not None
    assert re.search(rf"\b{check.objective}\b", expr)
    assert re.search(rf"{'>' if check.above else '<'}\s+on\s*\(model\)", expr)
    unless = [branch for branch in re.split(r"\bor\b", expr) if re.search(r"\bunless\b", branch)]
    if check.default is None:
        assert not unless, "the rule holds models without an objective to a line the check lacks"
    else:
        assert len(unless) == 1
        assert (">" if check.above else "<", check.default) in comparisons(unless[0].split("unless")[0])
        assert re.search(rf"\bunless\s+on\s*\(model\)\s*{check.objective}\b", unless[0])


def test_live_accuracy_waits_for_as_many_samples_as_its_rule():
    expr = ALERTS["ServometerLiveAccuracyBelowObjective"]["expr"]
    assert (">=", float(LIVE_ACCURACY_MIN_SAMPLES)) in comparisons(expr)


LATENCY = CHECK_BY_ALERT["ServometerLatencyAboveObjective"]  # above, for 5m
NOT_READY = CHECK_BY_ALERT["ServometerModelNotReady"]  # below, for 2m


def test_judge_of_no_samples_is_no_value_and_holds():
    assert judge(LATENCY, 0.5, np.zeros(0), np.zeros(0)) == Verdict(None, False, 0.0, False)


def test_judge_holds_when_never_breached():
    times = np.arange(0.0, 1000.0)
    values = np.full(len(times), 0.5)  # equal to the threshold: the rule's `>` does not hold
    assert judge(LATENCY, 0.5, times, values) == Verdict(0.5, False, 0.0, False)


def test_judge_counts_from_the_first_sample_of_the_trailing_breached_run():
    times = np.arange(0.0, 400.0)
    values = np.where((times < 50) | (times >= 80), 0.9, 0.1)
    assert judge(LATENCY, 0.5, times, values) == Verdict(0.9, True, 399.0 - 80.0, True)
    assert judge(LATENCY, 0.5, times[:380], values[:380]) == Verdict(0.9, True, 299.0, False)
    assert judge(LATENCY, 0.5, times[:381], values[:381]) == Verdict(0.9, True, 300.0, True)


def test_judge_of_a_breach_that_ended_is_not_breached():
    times = np.arange(0.0, 600.0)
    values = np.where(times < 599, 0.9, 0.2)
    assert judge(LATENCY, 0.5, times, values) == Verdict(0.2, False, 0.0, False)


def test_nan_never_breaches_and_has_no_value():
    times = np.arange(0.0, 600.0)
    assert judge(LATENCY, 0.5, times, np.full(len(times), NAN)) == Verdict(None, False, 0.0, False)
    # A gap in the samples breaks the run, as a rule's condition without a sample does.
    values = np.where(times == 400, NAN, 0.9)
    assert judge(LATENCY, 0.5, times, values) == Verdict(0.9, True, 599.0 - 401.0, False)
    assert judge(NOT_READY, 1.0, times, np.full(len(times), NAN)) == Verdict(None, False, 0.0, False)


def test_checks_not_above_breach_below_the_threshold():
    times = np.arange(0.0, 200.0)
    assert judge(NOT_READY, 1.0, times, np.zeros(len(times))) == Verdict(0.0, True, 199.0, True)
    assert judge(NOT_READY, 1.0, times, np.ones(len(times))) == Verdict(1.0, False, 0.0, False)
    assert judge(NOT_READY, 1.0, times, np.full(len(times), 7.0)) == Verdict(7.0, False, 0.0, False)


@settings(deadline=None, max_examples=200)
@given(
    check=st.sampled_from(CHECKS),
    threshold=st.floats(min_value=-10, max_value=10),
    data=st.data(),
)
def test_judge_breached_for_is_the_trailing_run_length_and_fires_at_for(check: Check, threshold: float, data):
    size = data.draw(st.integers(min_value=1, max_value=60))
    # Whole steps too, so a run can last exactly for_s.
    step = st.one_of(st.sampled_from([15.0, 30.0, 60.0]), st.floats(min_value=0.5, max_value=60.0))
    steps = data.draw(st.lists(step, min_size=size, max_size=size))
    offsets = data.draw(st.lists(st.sampled_from([-1.0, 0.0, 1.0, NAN]), min_size=size, max_size=size))
    times = np.cumsum(steps)
    values = threshold + np.asarray(offsets)
    breached = [not math.isnan(v) and (v > threshold if check.above else v < threshold) for v in values]
    start = len(values)
    while start > 0 and breached[start - 1]:
        start -= 1
    run = float(times[-1] - times[start]) if start < len(values) else 0.0
    verdict = judge(check, threshold, times, values)
    assert verdict.breached == breached[-1]
    assert verdict.breached_for_s == run
    assert verdict.firing == (breached[-1] and run >= check.for_s)
    assert verdict.value == (None if math.isnan(values[-1]) else values[-1])


def _alternatives(expr: str, label: str) -> set[str]:
    found = re.findall(rf'{label}=~"([^"]+)"', expr)
    assert len(found) == 1, (label, expr)
    return set(found[0].split("|"))


def test_the_outcomes_and_drop_reasons_counted_are_the_rules_own():
    errors = RECORDINGS["model_variant:servometer_errors:ratio_rate5m"]["expr"]
    assert _alternatives(errors, "outcome") == set(ERROR_OUTCOMES)
    rejected = ALERTS["ServometerRequestsRejected"]["expr"]
    assert _alternatives(rejected, "reason") == set(REJECTED_REASONS)


def test_the_history_needed_covers_every_rules_window_and_for():
    needed = max(
        seconds(rule["for"]) + max(windows_of(rule["expr"]) or {0.0})
        for alert, rule in ALERTS.items()
        if alert in CHECK_BY_ALERT
    )
    assert needed == HISTORY_NEEDED_S
