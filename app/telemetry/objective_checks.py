"""The alert rules' conditions (deploy/prometheus/rules/servometer-alerts.yml), evaluated on this worker's
timeline for the live page: the same thresholds (a model's ``servometer_objective_*`` gauge, which the rules
compare with, or the rule's own fixed line), the same windows, and how long each has been breached against the
rule's ``for``. tests/telemetry/test_objective_checks.py holds these to the rules file, so the two cannot part.

Rules that compare a model with its own last hour or day (ServometerThroughputDropped, ServometerLatencyRegressed,
ServometerCacheHitRatioCollapsed) need more history than the page keeps: they are Prometheus' alone.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    alert: str
    """The alert rule it mirrors."""
    title: str
    window_s: float
    """The range the rule's expression looks over (0: the current value)."""
    for_s: float
    """How long the condition must hold before the rule fires."""
    objective: str | None
    """The objective gauge holding the threshold; None: the rule's fixed line only."""
    default: float | None
    """The threshold when the model sets no objective; None: no objective, no check."""
    above: bool
    """Breached when the value is above the threshold (else below)."""
    unit: str


CHECKS: tuple[Check, ...] = (
    Check("ServometerLatencyAboveObjective", "p99 latency", 300, 300,
          "servometer_objective_latency_p99_seconds", None, True, "s"),
    Check("ServometerErrorRatioAboveObjective", "error ratio", 300, 300,
          "servometer_objective_error_ratio", 0.05, True, "ratio"),
    Check("ServometerRequestsRejected", "rejected in the queue", 300, 300, None, 0.01, True, "ratio"),
    Check("ServometerQueueSaturated", "queue fill", 120, 180, None, 0.8, True, "ratio"),
    Check("ServometerCostOverBudget", "cost per 1,000 inferences", 300, 900,
          "servometer_objective_cost_per_1k_inferences_dollars", None, True, "$"),
    Check("ServometerThroughputBelowObjective", "inferences/s of the model", 300, 600,
          "servometer_objective_min_throughput_per_second", None, False, "/s"),
    Check("ServometerModelNotReady", "ready", 0, 120, None, 1.0, False, "bool"),
    Check("ServometerInputDrift", "input drift (PSI)", 0, 900, "servometer_objective_max_drift_psi", 0.25, True, "psi"),
    Check("ServometerPredictionDrift", "prediction drift (PSI)", 0, 900,
          "servometer_objective_max_drift_psi", 0.25, True, "psi"),
    Check("ServometerLiveAccuracyBelowObjective", "live accuracy", 0, 900,
          "servometer_objective_min_live_accuracy", None, False, "ratio"),
)  # fmt: skip
CHECK_BY_ALERT = {check.alert: check for check in CHECKS}
HISTORY_NEEDED_S = max(check.window_s + check.for_s for check in CHECKS)
"""Samples a check needs to say whether its rule fires: its ``for``, and a full window before the first of them."""
ERROR_OUTCOMES = ("server_error", "timeout", "rejected")
"""The outcomes the error ratio counts (model_variant:servometer_errors:ratio_rate5m)."""
REJECTED_REASONS = ("queue_full", "priority_queue_full", "timeout")
"""The drop reasons ServometerRequestsRejected counts."""
LIVE_ACCURACY_MIN_SAMPLES = 50
"""ServometerLiveAccuracyBelowObjective waits for this many judged answers."""


@dataclass(frozen=True)
class Verdict:
    value: float | None
    """The condition's value now; None where the rule would have no sample (no traffic in the window)."""
    breached: bool
    """The condition is breached now: the objective does not hold."""
    breached_for_s: float
    """How long the condition has been breached without a break, up to now."""
    firing: bool
    """Breached for at least the rule's ``for``: Prometheus would be firing the alert."""


def judge(check: Check, threshold: float, times: np.ndarray, values: np.ndarray) -> Verdict:
    """``values``: the condition's value at each sample time (NaN: no sample, which never breaches)."""
    if len(times) == 0:
        return Verdict(None, False, 0.0, False)
    with np.errstate(invalid="ignore"):
        breached = values > threshold if check.above else values < threshold
    clear = np.flatnonzero(~breached)
    since = 0 if len(clear) == 0 else clear[-1] + 1
    breached_for = 0.0 if since >= len(times) else float(times[-1] - times[since])
    now, breached_now = float(values[-1]), bool(breached[-1])
    return Verdict(
        None if np.isnan(now) else now, breached_now, breached_for, breached_now and breached_for >= check.for_s
    )
