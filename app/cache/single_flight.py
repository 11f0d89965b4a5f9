"""Identical requests in flight at the same time run the model once and all get the answer."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _LeaderGone(Exception):
    """The request doing the work was cancelled; a follower does the work itself."""


class SingleFlight:
    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(
        self, key: str, work: Callable[[], Awaitable[T]], shared_errors: tuple[type[Exception], ...]
    ) -> tuple[T, bool]:
        """``work()``'s result, and whether it came from an identical request already running.

        A follower takes the leader's error only if it is one of ``shared_errors`` (the model failed, and would
        fail the same way again); an error of the leader's own (its client left, its queue timeout) makes the
        follower do the work itself.
        """
        while (leader := self._flights.get(key)) is not None:
            try:
                result: T = await asyncio.shield(leader)
                return result, True
            except shared_errors:
                raise
            except Exception:  # noqa: S112 - the leader's own failure: try again, leading if nobody else does
                continue
        flight: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            result = await work()
        except asyncio.CancelledError:
            _fail(flight, _LeaderGone())
            raise
        except Exception as exc:
            _fail(flight, exc)
            raise
        else:
            flight.set_result(result)
            return result, False
        finally:
            del self._flights[key]


def _fail(flight: asyncio.Future[Any], error: Exception) -> None:
    flight.set_exception(error)
    flight.exception()  # marks it retrieved: no warning when no follower was waiting
