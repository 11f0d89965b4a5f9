"""Fixtures shared by every test folder."""

from pathlib import Path

import pytest

from app.repository.builder import build_models
from tests.helpers import MODELS


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The bundled demo repository, built once if its files are missing."""
    build_models(MODELS)
    return MODELS
