"""Fixtures shared by every test folder."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.repository.builder import build_models
from tests.helpers import MODELS
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The bundled demo repository, built once if its files are missing."""
    build_models(MODELS)
    return MODELS


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own, on a free port; stopped by PID afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
