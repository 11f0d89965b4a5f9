"""Each answer judged once by whichever process receives its feedback: through a directory the workers of one
``serve`` share, through a real Redis every replica shares, and on without Redis when it fails."""

import time

import pytest

from app.errors import Unavailable
from app.monitoring.judged import DirectoryJudged, RedisJudged


def _expiry(seconds: float) -> int:
    return int((time.time() + seconds) * 1000)


async def test_workers_sharing_a_directory_accept_each_judgement_once(tmp_path):
    first, second = DirectoryJudged(tmp_path / "judged"), DirectoryJudged(tmp_path / "judged")
    assert await first.claim("answer-1", _expiry(60))
    assert not await second.claim("answer-1", _expiry(60))
    assert not await first.claim("answer-1", _expiry(60))
    assert await second.claim("answer-2", _expiry(60))


async def test_a_full_directory_sweeps_expired_judgements_and_refuses_while_every_one_is_live(tmp_path):
    judged = DirectoryJudged(tmp_path / "judged", max_judged=2)
    assert await judged.claim("short", _expiry(-1))  # already expired: swept when room is needed
    assert await judged.claim("long-1", _expiry(60))
    assert await judged.claim("long-2", _expiry(60))
    with pytest.raises(Unavailable, match="no more feedback until the oldest expire"):
        await judged.claim("long-3", _expiry(60))
    assert not await judged.claim("long-1", _expiry(60))


async def test_replicas_sharing_redis_accept_each_judgement_once_and_go_on_without_it(redis_server):
    first = RedisJudged(redis_server.url, "servometer:", 0.5)
    second = RedisJudged(redis_server.url, "servometer:", 0.5)
    try:
        assert await first.claim("answer-1", _expiry(60))
        assert not await second.claim("answer-1", _expiry(60))
        (key,) = redis_server.client().keys("servometer:judged:*")
        assert 0 < redis_server.client().pttl(key) <= 60_000  # forgotten by Redis when the id expires
        redis_server.kill()
        assert await second.claim("answer-2", _expiry(60))  # Redis away: this process decides
        assert not await second.claim("answer-2", _expiry(60))
        assert not await first.claim("answer-1", _expiry(60))  # and remembers what it judged before
    finally:
        await first.close()
        await second.close()
