import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.context import AppContext
from app.main import create_app
from app.repository.registry import Registry


def context_of(client: TestClient) -> AppContext:
    app = client.app
    assert isinstance(app, FastAPI)
    context: AppContext = app.state.context
    return context


def registry_of(client: TestClient) -> Registry:
    return context_of(client).registry


@contextmanager
def started_client(models: Path, **settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models=models, **settings))) as client:
        deadline = time.monotonic() + 60
        while not context_of(client).service.started:
            assert time.monotonic() < deadline, "models did not load"
            time.sleep(0.05)
        yield client


@pytest.fixture(scope="module")
def client(demo_models) -> Iterator[TestClient]:
    with started_client(demo_models) as client:
        yield client
