"""The alert rules' conditions for one variant (and one model's throughput), computed at every sample of the
timeline and judged against the rules' thresholds and ``for`` (:mod:`app.telemetry.objective_checks`)."""

import math
from collections.abc import Callable, Sequence

import numpy as np

from app.live.variant_figures import VariantFigures
from app.live.wire import CheckView
from app.telemetry.families import OUTCOMES
from app.telemetry.objective_checks import (
    CHECK_BY_ALERT,
    ERROR_OUTCOMES,
    LIVE_ACCURACY_MIN_SAMPLES,
    REJECTED_REASONS,
    Check,
    judge,
)
from app.telemetry.series_math import average, increase, quantile, rate, ratio
from app.telemetry.timeline import SeriesKey

Values = tuple[np.ndarray, np.ndarray]
"""Sample times, and the condition's value at each."""
Reader = Callable[[Sequence[SeriesKey]], Values]


def variant_checks(variant: VariantFigures) -> list[CheckView]:
    views = []
    for alert, compute in _conditions(variant).items():
        check = CHECK_BY_ALERT[alert]
        threshold = _threshold(lambda keys: variant.read(keys, variant.since_recent), check, variant.model)
        if threshold is not None:
            for subject, (times, values) in compute(check).items():
                views.append(_view(check, subject, threshold, times, values))
    return views


def model_checks(model: str, variants: Sequence[VariantFigures], read: Reader) -> list[CheckView]:
    """ServometerThroughputBelowObjective: the inferences/s of all of a model's variants together."""
    check = CHECK_BY_ALERT["ServometerThroughputBelowObjective"]
    threshold = _threshold(read, check, model) if variants else None
    if threshold is None:
        return []
    keys = [key for variant in variants for key in variant.keys("servometer_inferences_total")]
    times, counted = variants[0].count(keys, None)
    return [_view(check, model, threshold, times, rate(times, counted, check.window_s).sum(axis=1))]


def _conditions(variant: VariantFigures) -> dict[str, Callable[[Check], dict[str, Values]]]:
    """Each alert's condition at every sample, by subject (the variant; for drift, each of its inputs)."""
    subject = f"{variant.model}/{variant.variant}"

    def requests(outcomes: Sequence[str], window: float) -> Values:
        times, values = variant.count(variant.keys("servometer_requests_total", outcomes), None)
        return times, increase(times, values.sum(axis=1), window)[0]

    def p99(check: Check) -> dict[str, Values]:
        bounds, keys = variant.histogram("servometer_request_duration_seconds")
        times, buckets = variant.count(keys, None)
        return {subject: (times, quantile(0.99, bounds, increase(times, buckets, check.window_s)[0]))}

    def errors(check: Check) -> dict[str, Values]:
        times, failed = requests(ERROR_OUTCOMES, check.window_s)
        return {subject: (times, ratio(failed, requests(OUTCOMES, check.window_s)[1]))}

    def rejected(check: Check) -> dict[str, Values]:
        times, dropped = variant.count(variant.keys("servometer_queue_dropped_requests_total", REJECTED_REASONS), None)
        grown = increase(times, dropped.sum(axis=1), check.window_s)[0]
        return {subject: (times, ratio(grown, requests(OUTCOMES, check.window_s)[1]))}

    def queue(check: Check) -> dict[str, Values]:
        keys = [*variant.keys("servometer_queue_depth"), *variant.keys("servometer_queue_capacity")]
        times, values = variant.read(keys, None)
        return {subject: (times, ratio(average(times, values[:, 0], check.window_s), values[:, 1]))}

    def cost(check: Check) -> dict[str, Values]:
        keys = [*variant.keys("servometer_cost_dollars_total"), *variant.keys("servometer_inferences_total")]
        times, values = variant.count(keys, None)
        grown = increase(times, values, check.window_s)[0]
        return {subject: (times, 1000 * ratio(grown[:, 0], grown[:, 1]))}

    def ready(_: Check) -> dict[str, Values]:
        times, values = variant.read(variant.keys("servometer_model_ready"), None)
        return {subject: (times, values[:, 0])}

    def drift(prediction: bool) -> Callable[[Check], dict[str, Values]]:
        def compute(_: Check) -> dict[str, Values]:
            features = [f for f in variant.drift_features() if (f == "prediction") == prediction]
            times, values = variant.read(variant.keys("servometer_drift_psi", features), None)
            return {f"{subject} {feature}": (times, values[:, index]) for index, feature in enumerate(features)}

        return compute

    def accuracy(_: Check) -> dict[str, Values]:
        keys = [*variant.keys("servometer_live_accuracy"), *variant.keys("servometer_live_feedback_samples")]
        times, values = variant.read(keys, None)
        if np.isnan(values[:, 0]).all():
            return {}
        return {subject: (times, np.where(values[:, 1] >= LIVE_ACCURACY_MIN_SAMPLES, values[:, 0], np.nan))}

    return {
        "ServometerLatencyAboveObjective": p99,
        "ServometerErrorRatioAboveObjective": errors,
        "ServometerRequestsRejected": rejected,
        "ServometerQueueSaturated": queue,
        "ServometerCostOverBudget": cost,
        "ServometerModelNotReady": ready,
        "ServometerInputDrift": drift(False),
        "ServometerPredictionDrift": drift(True),
        "ServometerLiveAccuracyBelowObjective": accuracy,
    }


def _threshold(read: Reader, check: Check, model: str) -> tuple[float, bool] | None:
    """The check's threshold for ``model`` (its objective gauge's latest sample, read by ``read``, else the rule's
    own line) and whether it is the model's objective; None when there is neither."""
    if check.objective is not None:
        _, values = read([(check.objective, model)])
        if len(values) and not math.isnan(values[-1, 0]):
            return float(values[-1, 0]), True
    return None if check.default is None else (check.default, False)


def _view(
    check: Check, subject: str, threshold: tuple[float, bool], times: np.ndarray, values: np.ndarray
) -> CheckView:
    verdict = judge(check, threshold[0], times, values)
    return CheckView(
        alert=check.alert, title=check.title, subject=subject, threshold=threshold[0], above=check.above,
        from_objective=threshold[1], unit=check.unit, window_s=check.window_s, for_s=check.for_s, value=verdict.value,
        holds=not verdict.breached, breached_for_s=verdict.breached_for_s, firing=verdict.firing,
    )  # fmt: skip
