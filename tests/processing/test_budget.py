"""Cutting a batch of texts into model calls within a token budget."""

from collections.abc import Iterator

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.processing.budget import plan_calls, tokens_computed


def partitions(items: list[int]) -> Iterator[list[list[int]]]:
    """Every way of splitting ``items`` into non-empty groups."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        yield [[first], *smaller]
        for index, group in enumerate(smaller):
            yield [*smaller[:index], [first, *group], *smaller[index + 1 :]]


def keeps_to(lengths: np.ndarray, rows: np.ndarray | list[int], budget: int) -> bool:
    """A text longer than the budget goes alone; every other call stays within it (0: no budget)."""
    return len(rows) == 1 or not budget or len(rows) * int(lengths[rows].max()) <= budget


def cost(lengths: np.ndarray, calls: list[np.ndarray] | list[list[int]], call_cost: float) -> float:
    return sum(len(rows) * int(lengths[rows].max()) + call_cost for rows in calls)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=256), min_size=1, max_size=64),
    budget=st.integers(min_value=0, max_value=8192),
    call_cost=st.floats(min_value=0, max_value=64),
)
def test_every_text_is_in_one_call_and_each_call_keeps_to_the_budget(lengths, budget, call_cost):
    array = np.array(lengths)
    calls = plan_calls(array, budget, call_cost)
    rows = np.concatenate(calls)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for call in calls:
        assert len(call) >= 1
        assert keeps_to(array, call, budget)
    assert tokens_computed(array, calls) >= array.sum()


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=256), min_size=2, max_size=64),
    budget=st.integers(min_value=256, max_value=8192),
    call_cost=st.floats(min_value=0, max_value=64),
)
def test_calls_group_texts_of_similar_length(lengths, budget, call_cost):
    array = np.array(lengths)
    calls = plan_calls(array, budget, call_cost)
    # Calls never interleave: every text of a call is at least as long as every text of the calls before it.
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert array[earlier].max() <= array[later].min()


def test_without_a_budget_the_batch_is_one_call_in_its_order():
    calls = plan_calls(np.array([30, 5, 12]), 0)
    assert [call.tolist() for call in calls] == [[0, 1, 2]]


def test_sorting_cuts_the_padding_of_mixed_lengths():
    lengths = np.array([120, 8, 9, 118, 10, 121, 7, 119])
    padded_together = len(lengths) * lengths.max()
    calls = plan_calls(lengths, 4 * 121, call_cost_tokens=8)
    assert [sorted(lengths[call].tolist()) for call in calls] == [[7, 8, 9, 10], [118, 119, 120, 121]]
    assert tokens_computed(lengths, calls) == 4 * 10 + 4 * 121 < padded_together


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=128), min_size=1, max_size=7),
    budget=st.integers(min_value=1, max_value=512),
    call_cost=st.floats(min_value=0, max_value=64),
)
def test_no_other_split_within_the_budget_computes_less(lengths, budget, call_cost):
    array = np.array(lengths)
    planned = cost(array, plan_calls(array, budget, call_cost), call_cost)
    splits = partitions(list(range(len(lengths))))
    allowed = (split for split in splits if all(keeps_to(array, rows, budget) for rows in split))
    assert planned <= min(cost(array, split, call_cost) for split in allowed) + 1e-9


def test_a_call_costing_more_than_its_padding_saves_is_not_made():
    lengths = np.array([10, 11])
    assert len(plan_calls(lengths, 256, call_cost_tokens=0)) == 2  # alone: 21 tokens, together 22
    assert len(plan_calls(lengths, 256, call_cost_tokens=8)) == 1  # one call of 22 beats two of 21 plus 8
