import asyncio

from app.cache.memory import MemoryBackend


async def test_least_recently_used_entries_go_first_when_bytes_run_out():
    cache = MemoryBackend(max_bytes=30)
    await cache.set("a", b"x" * 10, 60)
    await cache.set("b", b"y" * 10, 60)
    await cache.set("c", b"z" * 10, 60)
    assert await cache.get("a") == b"x" * 10  # a is now the most recent
    await cache.set("d", b"w" * 10, 60)
    assert await cache.get("b") is None
    assert {await cache.get(k) for k in "acd"} == {b"x" * 10, b"z" * 10, b"w" * 10}
    assert cache.usage() == (30, 3)


async def test_entries_expire_after_their_ttl():
    cache = MemoryBackend(max_bytes=100)
    await cache.set("a", b"x", 0.05)
    assert await cache.get("a") == b"x"
    await asyncio.sleep(0.08)
    assert await cache.get("a") is None
    assert cache.usage() == (0, 0)


async def test_an_entry_bigger_than_the_whole_cache_is_not_stored_and_evicts_nothing():
    cache = MemoryBackend(max_bytes=10)
    await cache.set("a", b"x" * 5, 60)
    await cache.set("big", b"y" * 11, 60)
    assert await cache.get("big") is None
    assert await cache.get("a") == b"x" * 5


async def test_overwriting_a_key_keeps_the_byte_count_right():
    cache = MemoryBackend(max_bytes=100)
    await cache.set("a", b"x" * 10, 60)
    await cache.set("a", b"y" * 4, 60)
    assert cache.usage() == (4, 1)
