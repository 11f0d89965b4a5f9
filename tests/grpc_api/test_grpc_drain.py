"""SIGTERM with gRPC calls in flight: the health service stops saying SERVING, every admitted call is answered OK
(the same drain as HTTP's: one batcher serves both), and the process exits 0."""

import concurrent.futures
import signal
import time
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.stack import write_slow_model
from tests.e2e.test_shutdown import LENGTH, _admitted
from tests.helpers import free_port, server_process

CALLS = 16


def _call(address: str) -> Any:
    client = triton.InferenceServerClient(address)
    try:
        tensor = triton.InferInput("x", [1, LENGTH], "FP32")
        tensor.set_data_from_numpy(np.full((1, LENGTH), 0.01, np.float32))
        return client.infer("slow", [tensor], client_timeout=60).as_numpy("y")
    finally:
        client.close()


def _health(address: str) -> int | None:
    """The health service's status, or None once the port no longer answers."""
    with grpc.insecure_channel(address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        try:
            return int(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)
        except grpc.RpcError:
            return None


def test_sigterm_answers_every_admitted_grpc_call_and_exits_zero(tmp_path):
    write_slow_model(tmp_path / "models" / "slow", latency_objective_s=1.0)
    port = free_port()
    grpc_address = f"127.0.0.1:{port}"
    env = {"SERVOMETER_DRAIN_TIMEOUT_S": "20", "SERVOMETER_ONNX_INTRA_OP_THREADS": "1"}
    log = tmp_path / "server.log"
    with server_process(tmp_path / "models", "--grpc-port", str(port), env=env, log=log) as (process, address):
        assert _health(grpc_address) == health_pb2.HealthCheckResponse.SERVING
        with concurrent.futures.ThreadPoolExecutor(CALLS) as pool:
            calls = [pool.submit(_call, grpc_address) for _ in range(CALLS)]
            deadline = time.monotonic() + 60
            while _admitted(address) < CALLS:
                assert time.monotonic() < deadline, f"only {_admitted(address)} of {CALLS} calls arrived"
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            while _health(grpc_address) == health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() - signalled < 10
                time.sleep(0.01)
            answers = [call.result(timeout=60) for call in calls]
        code = process.wait(timeout=60)
    expected = float(np.float32(0.01) ** 4 * LENGTH**3)
    assert all(answer[0, 0] == pytest.approx(expected, rel=1e-3) for answer in answers)
    assert code == 0, log.read_text()[-2000:]
