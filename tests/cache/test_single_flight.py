import asyncio

import pytest

from app.cache.single_flight import SingleFlight
from app.errors import ClientGone, ModelFailed


async def test_identical_requests_in_flight_run_the_work_once():
    flights = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "answer"

    runs = [asyncio.create_task(flights.run("k", work, (ModelFailed,))) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*runs)
    assert calls == 1
    assert sorted(shared for _, shared in results) == [False, True, True, True, True]
    assert {answer for answer, _ in results} == {"answer"}
    assert len(flights) == 0


async def test_a_model_failure_is_shared_but_a_leaders_own_failure_is_not():
    flights = SingleFlight()
    attempts: list[str] = []

    def failing(error: Exception):
        async def work() -> str:
            attempts.append(type(error).__name__)
            await asyncio.sleep(0.02)
            raise error

        return work

    leader = asyncio.create_task(flights.run("k", failing(ModelFailed("boom")), (ModelFailed,)))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("k", failing(ModelFailed("again")), (ModelFailed,)))
    for task in (leader, follower):
        with pytest.raises(ModelFailed, match="boom"):
            await task
    assert attempts == ["ModelFailed"]

    async def fine() -> str:
        return "computed by the follower"

    leader = asyncio.create_task(flights.run("j", failing(ClientGone("left")), (ModelFailed,)))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("j", fine, (ModelFailed,)))
    with pytest.raises(ClientGone):
        await leader
    assert await follower == ("computed by the follower", False)


async def test_a_cancelled_leader_hands_the_work_to_a_follower():
    flights = SingleFlight()

    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    async def quick() -> str:
        return "follower's"

    leader = asyncio.create_task(flights.run("k", slow, ()))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("k", quick, ()))
    await asyncio.sleep(0)
    leader.cancel()
    assert await follower == ("follower's", False)
