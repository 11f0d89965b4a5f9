"""The monitoring stack for real, on 127.0.0.1: Prometheus and Alertmanager (Debian's packages) configured from the
files in deploy/, a webhook receiver that records what Alertmanager posts, and a test model whose latency a test
can raise.

The shipped rules are used with their time compressed: every window, offset and ``for`` divided by
``TIME_COMPRESSION``, so five minutes of production behaviour play out in ten seconds. Nothing else changes.
"""

import contextlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper

from tests.helpers import ROOT, free_port
from tests.processes import running

DEPLOY = ROOT / "deploy"
TIME_COMPRESSION = 30
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def compress(duration: str) -> str:
    """``5m`` -> ``10s`` at 30x; never below one second."""
    match = _DURATION.fullmatch(duration)
    assert match, f"unexpected duration {duration!r}"
    seconds = int(match[1]) * _SECONDS[match[2]]
    return f"{max(1, seconds // TIME_COMPRESSION)}s"


def compressed_rules(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[(\d+[smhd])\]", lambda m: f"[{compress(m[1])}]", rule["expr"])
            rule["expr"] = re.sub(r"offset (\d+[smhd])", lambda m: f"offset {compress(m[1])}", rule["expr"])
            if "for" in rule:
                rule["for"] = compress(rule["for"])
    return document


def write_slow_model(folder: Path, latency_objective_s: float) -> None:
    """A model whose compute grows with the cube of its input's length: ``[1, n]`` costs about 2·n³ flops.

    y = sum((xᵀx)·(xᵀx)): short inputs answer in microseconds, n = 700 takes tens of milliseconds.
    """
    folder.mkdir(parents=True)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"]),
        helper.make_node("MatMul", ["xt", "x"], ["outer"]),
        helper.make_node("MatMul", ["outer", "outer"], ["square"]),
        helper.make_node("ReduceSum", ["square"], ["y"], keepdims=1),
    ]
    graph = helper.make_graph(nodes, "slow", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(folder / "model.onnx"))
    manifest = {
        "name": folder.name,
        "description": "Test model: latency grows with the input's length.",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, -1]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 1]}],
        "variants": [{"name": "fp32", "version": 1, "file": "model.onnx", "runtime": "onnx", "precision": "fp32"}],
        "batching": {"max_batch_size": 0},
        "cache": {"enabled": False},
        "objectives": {"latency_p99_s": latency_objective_s, "error_ratio": 0.01},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def slow_request(length: int) -> dict[str, Any]:
    data = np.full(length, 0.01, dtype=np.float32)
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, length], "data": data.tolist()}]}


class WebhookReceiver:
    """deploy/alertmanager/webhook_logger.py, run as its own process: reads back what Alertmanager posted to it."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "webhook.jsonl"
        self._command = [
            sys.executable, str(DEPLOY / "alertmanager" / "webhook_logger.py"), "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        self._running: contextlib.ExitStack | None = None

    def alerts(self, path: str, alertname: str, status: str) -> list[dict[str, Any]]:
        """The alerts named ``alertname`` with ``status`` (firing / resolved) posted to ``path`` so far."""
        lines = self.log.read_text().splitlines()
        return [
            alert
            for posted in map(json.loads, lines)
            if posted["path"] == path
            for alert in posted["notification"]["alerts"]
            if alert["labels"]["alertname"] == alertname and alert["status"] == status
        ]

    def __enter__(self) -> "WebhookReceiver":
        self._running = contextlib.ExitStack()
        # Any HTTP answer (501 to a GET) means it listens.
        self._running.enter_context(_process(self._command, f"127.0.0.1:{self.port}", "/", self.log, ready_any=True))
        return self

    def __exit__(self, *_: object) -> None:
        assert self._running is not None
        self._running.close()


@contextlib.contextmanager
def _process(command: list[str], address: str, ready_path: str, log: Path, ready_any: bool = False) -> Iterator[str]:
    with running(command, log, f"http://{address}{ready_path}", ready=lambda status: ready_any or status == 200):
        yield address


def alertmanager(directory: Path, webhook_url: str) -> contextlib.AbstractContextManager[str]:
    """deploy/alertmanager/alertmanager.yml with its receivers pointed at ``webhook_url`` and its waits shortened."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "Alertmanager is missing: `make test` installs Debian's prometheus-alertmanager package"
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    for route in [config["route"], *config["route"]["routes"]]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = webhook_url + webhook["url"].split(":9095", 1)[1]
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    command = [
        binary, f"--config.file={directory / 'alertmanager.yml'}", f"--storage.path={directory / 'am-data'}",
        f"--web.listen-address={address}", "--cluster.listen-address=",
    ]  # fmt: skip
    return _process(command, address, "/-/ready", directory / "alertmanager.log")


def prometheus(directory: Path, servometer: str, alertmanager_address: str) -> contextlib.AbstractContextManager[str]:
    """deploy/prometheus/prometheus.yml scraping ``servometer`` every second, with the rules time-compressed."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is missing: `make test` installs Debian's prometheus package"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager_address]
    (job,) = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [servometer]
    rules = directory / "rules"
    rules.mkdir()
    for name in config["rule_files"]:
        (directory / name).write_text(yaml.safe_dump(compressed_rules(DEPLOY / "prometheus" / name)))
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    command = [
        binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address={address}", "--rules.alert.resend-delay=1s",
    ]  # fmt: skip
    return _process(command, address, "/-/ready", directory / "prometheus.log")


def query(prometheus_address: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"http://{prometheus_address}/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result
