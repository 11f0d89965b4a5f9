"""Distribution comparisons for drift: the population stability index over fixed bins, and the two-sample
Kolmogorov-Smirnov test (numpy only: the serving install has no scipy)."""

import math

import numpy as np

EPSILON = 1e-4
"""Floor for a bin's share, so an empty bin does not make the index infinite."""


def bin_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Inner edges at the reference's quantiles, duplicates merged (many equal values, e.g. blank pixels)."""
    quantiles = np.quantile(values.astype(np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in quantiles})


def shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Each bin's share of ``values`` (bins split at ``edges``: value <= edge goes left)."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), values.ravel(), side="left"), minlength=len(edges) + 1)
    total = counts.sum()
    return [float(c) / total for c in counts] if total else [0.0] * (len(edges) + 1)


def psi(reference: list[float], live: list[float]) -> float:
    """Population stability index: sum of (live - ref) * ln(live / ref). Under 0.1 stable, over 0.25 shifted."""
    ref = np.maximum(np.asarray(reference), EPSILON)
    now = np.maximum(np.asarray(live), EPSILON)
    return float(np.sum((now - ref) * np.log(now / ref)))


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The KS statistic (largest gap between the two empirical CDFs) and its asymptotic p-value."""
    a, b = np.sort(a.astype(np.float64)), np.sort(b.astype(np.float64))
    if not len(a) or not len(b):
        return 0.0, 1.0
    points = np.concatenate([a, b])
    gap = np.abs(np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(b, points, side="right") / len(b))
    statistic = float(gap.max())
    effective = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    if lam < 0.2:  # the series does not converge down here; the distributions are indistinguishable
        return statistic, 1.0
    # Kolmogorov's series for P(D > d), as in Numerical Recipes' probks.
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return statistic, float(min(1.0, max(0.0, p)))
