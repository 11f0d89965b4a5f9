"""Cutting a batch of texts into model calls within a token budget, texts of similar length together.

A call computes samples x its longest text tokens, padding included: sorting by length before cutting keeps the
padding small, and the budget bounds a call's memory and latency however long the texts are.
"""

import numpy as np


def plan_calls(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row indices of each model call for texts of ``lengths`` tokens: every row once, each call's rows x its
    longest row within ``budget`` (a row longer than the budget alone gets a call of its own). ``budget`` 0: one
    call of every row, in order."""
    if not budget or len(lengths) <= 1:
        return [np.arange(len(lengths))]
    order = np.argsort(lengths, kind="stable")
    calls: list[np.ndarray] = []
    rows: list[int] = []
    for row in order.tolist():
        # Sorted ascending: ``row`` would be the call's longest.
        if rows and (len(rows) + 1) * int(lengths[row]) > budget:
            calls.append(np.array(rows))
            rows = []
        rows.append(row)
    calls.append(np.array(rows))
    return calls


def tokens_computed(lengths: np.ndarray, calls: list[np.ndarray]) -> int:
    """Tokens the calls compute, padding included."""
    return sum(len(rows) * int(lengths[rows].max()) for rows in calls)
