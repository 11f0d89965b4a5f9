import asyncio
import os
import tracemalloc

import pytest

from app.cache.memory import MemoryBackend, entry_cost


async def test_least_recently_used_entries_go_first_when_bytes_run_out():
    cost = entry_cost("a", b"x" * 10)
    cache = MemoryBackend(max_bytes=3 * cost)
    await cache.set("a", b"x" * 10, 60)
    await cache.set("b", b"y" * 10, 60)
    await cache.set("c", b"z" * 10, 60)
    assert await cache.get("a") == b"x" * 10  # a is now the most recent
    await cache.set("d", b"w" * 10, 60)
    assert await cache.get("b") is None
    assert {await cache.get(k) for k in "acd"} == {b"x" * 10, b"z" * 10, b"w" * 10}
    assert cache.usage() == (3 * cost, 3)


async def test_entries_expire_after_their_ttl():
    cache = MemoryBackend(max_bytes=1000)
    await cache.set("a", b"x", 0.05)
    assert await cache.get("a") == b"x"
    await asyncio.sleep(0.08)
    assert await cache.get("a") is None
    assert cache.usage() == (0, 0)


async def test_an_entry_bigger_than_the_whole_cache_is_not_stored_and_evicts_nothing():
    cache = MemoryBackend(max_bytes=entry_cost("a", b"x" * 5) + 5)
    await cache.set("a", b"x" * 5, 60)
    await cache.set("big", b"y" * 11, 60)
    assert await cache.get("big") is None
    assert await cache.get("a") == b"x" * 5


async def test_overwriting_a_key_keeps_the_byte_count_right():
    cache = MemoryBackend(max_bytes=1000)
    await cache.set("a", b"x" * 10, 60)
    await cache.set("a", b"y" * 4, 60)
    assert cache.usage() == (entry_cost("a", b"y" * 4), 1)


@pytest.mark.parametrize("value_bytes", [16, 130, 2_000, 40_000])
async def test_the_byte_count_is_what_the_entries_really_cost_within_20_percent(value_bytes):
    cache = MemoryBackend(max_bytes=1 << 40)
    entries = 200_000 // max(1, value_bytes // 100)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(entries):
            # As the cache stores them: a key and a value made for the entry, kept by nothing else.
            await cache.set(f"servometer:digits:fp32:{os.urandom(32).hex()}", os.urandom(value_bytes), 300)
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted, stored = cache.usage()
    assert stored == entries
    assert abs(counted - measured) <= 0.2 * measured, f"counted {counted} bytes, measured {measured}"
