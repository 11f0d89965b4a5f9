import os
import tracemalloc

import numpy as np
import pytest

from app.cache.memory import MemoryBackend, entry_cost, frozen_copy


def _answer(fill: float, values: int = 10) -> dict[str, np.ndarray]:
    return {"logits": np.full((1, values), fill, np.float32), "label": np.array([int(fill)], np.int64)}


def test_least_recently_used_entries_go_first_when_bytes_run_out():
    cost = entry_cost("a", _answer(1))
    cache = MemoryBackend(max_bytes=3 * cost)
    for key, fill in (("a", 1), ("b", 2), ("c", 3)):
        cache.set(key, _answer(fill), 60)
    assert cache.get("a") is not None  # a is now the most recent
    cache.set("d", _answer(4), 60)
    assert cache.get("b") is None
    assert {int(cache.get(k)["label"][0]) for k in "acd"} == {1, 3, 4}  # type: ignore[index]
    assert cache.usage() == (3 * cost, 3)


def test_entries_expire_after_their_ttl(monkeypatch):
    now = [1000.0]
    cache = MemoryBackend(max_bytes=10_000)
    monkeypatch.setattr(cache, "_now", lambda: now[0])
    cache.set("a", _answer(1), 0.05)
    assert cache.get("a") is not None
    now[0] += 0.08
    assert cache.get("a") is None
    assert cache.usage() == (0, 0)


def test_an_entry_bigger_than_the_whole_cache_is_not_stored_and_evicts_nothing():
    cache = MemoryBackend(max_bytes=entry_cost("a", _answer(1)) + 5)
    cache.set("a", _answer(1), 60)
    cache.set("big", _answer(2, values=1000), 60)
    assert cache.get("big") is None
    assert cache.get("a") is not None


def test_overwriting_a_key_keeps_the_byte_count_right():
    cache = MemoryBackend(max_bytes=100_000)
    cache.set("a", _answer(1, values=100), 60)
    cache.set("a", _answer(2, values=4), 60)
    assert cache.usage() == (entry_cost("a", _answer(2, values=4)), 1)


def test_a_stored_answer_owns_its_arrays_and_cannot_be_changed():
    batch = np.arange(20, dtype=np.float32).reshape(2, 10)
    stored = frozen_copy({"logits": batch[:1]})  # a request's outputs are views of its batch's
    assert stored["logits"].base is None
    with pytest.raises(ValueError, match="read-only"):
        stored["logits"][0, 0] = 99
    batch[0, 0] = 99
    assert stored["logits"][0, 0] == 0


@pytest.mark.parametrize("values", [10, 130, 2_000, 40_000])
def test_the_byte_count_is_what_the_entries_really_cost_within_20_percent(values):
    cache = MemoryBackend(max_bytes=1 << 40)
    entries = 100_000 // max(1, values // 50)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(entries):
            # As the cache stores them: a key made for the entry and a frozen copy of a request's outputs.
            outputs = {"logits": np.full((1, values), n, np.float32), "label": np.array([n], np.int64)}
            cache.set(f"digits:fp32:{os.urandom(32).hex()}", frozen_copy(outputs), 300)
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted, stored = cache.usage()
    assert stored == entries
    assert abs(counted - measured) <= 0.2 * measured, f"counted {counted} bytes, measured {measured}"
