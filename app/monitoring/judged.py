"""Which answers have been judged, so each answer is judged once by whichever process receives its feedback.

Feedback ids are signed with a secret every worker and replica shares, so any of them accepts any id; what was
judged must be shared as widely: in Redis when the gateway has one (every replica), else in a directory the
workers of one ``serve`` share, else in the process. An id is remembered until it expires (its expiry refuses it
after that); forgetting one earlier would let it be judged again.
"""

import contextlib
import hashlib
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import Unavailable

log = logging.getLogger(__name__)

MAX_JUDGED = 100_000
"""Ids one process (or one directory) remembers at once: past it, feedback is refused until the oldest expire."""


class JudgedIds(Protocol):
    async def claim(self, response_id: str, expires_ms: int) -> bool:
        """Record ``response_id`` as judged; False when it already was."""
        ...

    async def close(self) -> None: ...


def _full(count: int) -> Unavailable:
    return Unavailable(
        f"{count} answers judged within their feedback_ttl_s: no more feedback until the oldest expire",
        headers={"retry-after": "60"},
    )


class MemoryJudged:
    """One process's judged ids, in the order they were judged, with their expiry (ms)."""

    def __init__(self, max_judged: int = MAX_JUDGED) -> None:
        self._judged: OrderedDict[str, int] = OrderedDict()
        self._max_judged = max_judged

    async def claim(self, response_id: str, expires_ms: int) -> bool:
        if response_id in self._judged:
            return False
        now_ms = time.time() * 1000
        while self._judged and next(iter(self._judged.values())) < now_ms:
            self._judged.popitem(last=False)
        if len(self._judged) >= self._max_judged:
            raise _full(len(self._judged))
        self._judged[response_id] = expires_ms
        return True

    async def close(self) -> None:
        self._judged.clear()


class DirectoryJudged:
    """Judged ids as empty files in a directory the workers of one ``serve`` share: creating a file that must not
    exist yet (``O_EXCL``) is atomic across processes. A file's modification time is its id's expiry; expired
    files are swept when the directory fills."""

    def __init__(self, directory: Path, max_judged: int = MAX_JUDGED) -> None:
        self._directory = directory
        self._max_judged = max_judged
        directory.mkdir(parents=True, exist_ok=True)
        self._count = len(os.listdir(directory))

    async def claim(self, response_id: str, expires_ms: int) -> bool:
        path = self._directory / hashlib.sha256(response_id.encode()).hexdigest()[:32]
        if path.exists():
            return False
        if self._count >= self._max_judged:
            self._sweep()
            if self._count >= self._max_judged:
                raise _full(self._count)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        os.utime(path, ns=(expires_ms * 1_000_000, expires_ms * 1_000_000))
        self._count += 1
        return True

    def _sweep(self) -> None:
        now = time.time()
        for entry in os.scandir(self._directory):
            with contextlib.suppress(FileNotFoundError):  # another worker swept it first
                if entry.stat().st_mtime < now:
                    os.unlink(entry.path)
        self._count = len(os.listdir(self._directory))

    async def close(self) -> None:
        return None


class RedisJudged:
    """Judged ids as Redis keys that expire with them (``SET NX PX``): shared by every replica. When Redis fails,
    this process's own record decides, so feedback keeps working (judged at most once more per process)."""

    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self._prefix = prefix + "judged:"
        self._client = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._fallback = MemoryJudged()

    async def claim(self, response_id: str, expires_ms: int) -> bool:
        ttl_ms = max(1, expires_ms - int(time.time() * 1000))
        key = self._prefix + hashlib.sha256(response_id.encode()).hexdigest()[:32]
        try:
            first = await self._client.set(key, b"1", nx=True, px=ttl_ms)
        except (RedisError, OSError) as exc:
            log.warning("recording a judged answer in Redis failed (%s); this process's record decides", exc)
            return await self._fallback.claim(response_id, expires_ms)
        # Also recorded here, so an id judged while Redis is away is not judged again here when it is back.
        local = await self._fallback.claim(response_id, expires_ms)
        return bool(first) and local

    async def close(self) -> None:
        await self._client.aclose()
