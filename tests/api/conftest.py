import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
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


@asynccontextmanager
async def async_app(models: Path, **settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running on this test's event loop, and an in-process client for it."""
    app = create_app(Settings(models=models, **settings))
    async with app.router.lifespan_context(app):
        context: AppContext = app.state.context
        deadline = time.monotonic() + 60
        while not context.service.started:
            assert time.monotonic() < deadline, "models did not load"
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://servometer") as client:
            yield app, client
