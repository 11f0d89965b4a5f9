"""Cutting a batch of texts into model calls within a token budget."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.processing.budget import plan_calls, tokens_computed


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=256), min_size=1, max_size=64),
    budget=st.integers(min_value=0, max_value=8192),
)
def test_every_text_is_in_one_call_and_each_call_keeps_to_the_budget(lengths, budget):
    array = np.array(lengths)
    calls = plan_calls(array, budget)
    rows = np.concatenate(calls)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for call in calls:
        assert len(call) >= 1
        # A text longer than the budget goes alone; every other call stays within it.
        assert len(call) == 1 or not budget or len(call) * array[call].max() <= budget
    assert tokens_computed(array, calls) >= array.sum()


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=256), min_size=2, max_size=64),
    budget=st.integers(min_value=256, max_value=8192),
)
def test_calls_group_texts_of_similar_length(lengths, budget):
    array = np.array(lengths)
    calls = plan_calls(array, budget)
    # Calls never interleave: every text of a call is at least as long as every text of the calls before it.
    for earlier, later in zip(calls, calls[1:], strict=False):
        assert array[earlier].max() <= array[later].min()


def test_without_a_budget_the_batch_is_one_call_in_its_order():
    calls = plan_calls(np.array([30, 5, 12]), 0)
    assert [call.tolist() for call in calls] == [[0, 1, 2]]


def test_sorting_cuts_the_padding_of_mixed_lengths():
    lengths = np.array([120, 8, 9, 118, 10, 121, 7, 119])
    padded_together = len(lengths) * lengths.max()
    calls = plan_calls(lengths, 4 * 121)
    assert [sorted(lengths[call].tolist()) for call in calls] == [[7, 8, 9, 10], [118, 119, 120, 121]]
    assert tokens_computed(lengths, calls) == 4 * 10 + 4 * 121 < padded_together
