"""Readiness across ``--workers N``: the server is ready only when every worker is.

A probe reaches whichever worker accepts its connection, and a worker knows only its own models. So each worker
keeps a file named after its PID in a directory all of them share (made by ``servometer serve`` for the run),
present while it is ready; any worker counts the files of live workers before it answers ready.
"""

import contextlib
import os
from pathlib import Path


class WorkerReadiness:
    def __init__(self, directory: Path | None, workers: int) -> None:
        """``directory`` None: a single process, which is ready when it is."""
        self._directory = directory
        self._workers = workers
        self._mark = None if directory is None else directory / str(os.getpid())
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def publish(self, ready: bool) -> None:
        """Tell the other workers whether this one is ready."""
        if self._mark is None:
            return
        if ready:
            self._mark.touch()
        else:
            self._mark.unlink(missing_ok=True)

    def others_not_ready(self) -> str:
        """Why another worker keeps the server from being ready; empty when all of them are."""
        if self._directory is None:
            return ""
        ready = 0
        for mark in self._directory.iterdir():
            if _alive(mark.name):
                ready += 1
            else:  # a worker that died ready: uvicorn starts another in its place, which must show itself
                with contextlib.suppress(FileNotFoundError):
                    mark.unlink()
        if ready >= self._workers:
            return ""
        return f"{self._workers - ready} of {self._workers} workers are not ready yet"


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
