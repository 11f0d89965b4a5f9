"""Fixtures shared by every test folder."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.repository.builder import build_models
from tests.deploy import stack
from tests.helpers import MODELS, copy_model, running_server
from tests.layers import layer_of
from tests.redis_server import RedisServer

FAKE_NVML = Path(__file__).resolve().parent / "fake_nvml"
# Servers started by tests (in-process apps and the processes they spawn, which inherit this) serve no gRPC unless
# a test asks for it on a port of its own: many run at once, and gRPC's default port is one.
os.environ["SERVOMETER_GRPC_PORT"] = "0"
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its cost layer (tests/layers.py), so ``-m unit`` and the like select by cost."""
    for item in items:
        item.add_marker(layer_of(item.path.relative_to(TESTS).as_posix()))


SLOW_OBJECTIVE_S = 0.02


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


@dataclass(frozen=True)
class Monitored:
    servometer: str
    prometheus: str
    alertmanager: str
    webhook: stack.WebhookReceiver


@pytest.fixture(scope="session")
def monitored(demo_models, tmp_path_factory) -> Iterator[Monitored]:
    """One monitored deployment for the alerting and dashboard tests: a real Servometer (digits and the slow test
    model, a fake NVML so the GPU series exist) scraped by a real Prometheus that sends to a real Alertmanager,
    which posts to a webhook receiver in the test process. Started once, stopped by PID."""
    directory = tmp_path_factory.mktemp("monitored")
    models = directory / "models"
    digits = copy_model("digits", models)
    # Drift scored on every request, twice a second: the time-compressed rules see it within seconds.
    manifest = digits / "model.yaml"
    text = manifest.read_text().replace("sample_rate: 0.1", "sample_rate: 1.0")
    manifest.write_text(text.replace("interval_s: 5", "interval_s: 0.5"))
    stack.write_slow_model(models / "slow", SLOW_OBJECTIVE_S)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKE_NVML), os.environ.get("PYTHONPATH")])),
        "SERVOMETER_PRICE_PER_HOUR": "3.6",
        "SERVOMETER_GPU_SAMPLE_INTERVAL_S": "0.5",
        "SERVOMETER_CACHE_BACKEND": "memory",
        "SERVOMETER_ONNX_INTRA_OP_THREADS": "1",  # the slow model leaves a core to Prometheus and the tests
    }
    with (
        running_server(models, env=env, log=directory / "servometer.log") as servometer,
        stack.WebhookReceiver(directory) as webhook,
        stack.alertmanager(directory, webhook.url) as alertmanager,
        stack.prometheus(directory, servometer, alertmanager) as prometheus,
    ):
        yield Monitored(servometer, prometheus, alertmanager, webhook)
