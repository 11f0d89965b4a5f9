"""``--workers 2`` with gRPC: each worker listens on the shared gRPC port (SO_REUSEPORT), so calls on new
connections reach both, and every one is answered."""

from pathlib import Path

import tritonclient.grpc as triton

from tests.helpers import digits_images, free_port, server_process


def _listeners(port: int) -> int:
    """Sockets listening on ``port``, from /proc/net/tcp and tcp6 (grpcio binds 127.0.0.1 as a v4-mapped IPv6
    socket): state 0A is LISTEN."""
    lines = [line for table in ("tcp", "tcp6") for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")


def test_every_worker_serves_grpc_on_the_shared_port(demo_models, tmp_path):
    port = free_port()
    args = ("--workers", "2", "--grpc-port", str(port))
    with server_process(demo_models, *args, log=tmp_path / "server.log"):
        assert _listeners(port) == 2
        images = digits_images(1)
        for _ in range(20):  # each on a new connection, which the kernel hands to either worker
            client = triton.InferenceServerClient(f"127.0.0.1:{port}")
            tensor = triton.InferInput("image", [1, 1, 8, 8], "FP32")
            tensor.set_data_from_numpy(images)
            assert client.infer("digits", [tensor]).as_numpy("logits").shape == (1, 10)
            client.close()
