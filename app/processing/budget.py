"""Cutting a batch of texts into model calls within a token budget, texts of similar length together.

A call computes samples x its longest text tokens, padding included, plus a fixed cost of its own (the model's
weights stream through the caches once per call). Sorting by length and cutting the sorted run where the sum of
both is least keeps padding small without making many tiny calls, and the budget bounds a call's memory and
latency however long the texts are.
"""

import numpy as np


def plan_calls(lengths: np.ndarray, budget: int, call_cost_tokens: float = 0.0) -> list[np.ndarray]:
    """Row indices of each model call for texts of ``lengths`` tokens: every row once, each call's rows x its
    longest row within ``budget`` (a row longer than the budget alone gets a call of its own), and the tokens
    computed plus ``call_cost_tokens`` per call as few as possible. ``budget`` 0: one call of every row, in order."""
    if not budget or len(lengths) <= 1:
        return [np.arange(len(lengths))]
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order].astype(np.float64)
    count = len(ordered)
    # least[j]: the least cost of the first j sorted rows; a call of sorted rows i..j-1 costs its fixed cost plus
    # (j - i) x ordered[j - 1]. Calls of contiguous sorted rows are enough: swapping rows between two calls so that
    # the shorter ones go together never pads more.
    least = np.zeros(count + 1)
    start = np.zeros(count + 1, dtype=np.int64)
    for end in range(1, count + 1):
        width = ordered[end - 1]
        most_rows = max(1, min(end, int(budget // width)))
        firsts = np.arange(end - most_rows, end)
        costs = least[firsts] + call_cost_tokens + (end - firsts) * width
        best = int(np.argmin(costs))
        least[end], start[end] = costs[best], firsts[best]
    calls: list[np.ndarray] = []
    end = count
    while end:
        calls.append(order[start[end] : end])
        end = int(start[end])
    return calls[::-1]


def tokens_computed(lengths: np.ndarray, calls: list[np.ndarray]) -> int:
    """Tokens the calls compute, padding included."""
    return sum(len(rows) * int(lengths[rows].max()) for rows in calls)
