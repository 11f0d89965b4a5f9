"""Which cost layer each test belongs to, by its folder (or, where a folder mixes costs, its file).

- unit: one module or a few, in-process; may load the demo models. ``make test-fast`` runs these (< 30 s).
- integration: the whole app in-process, a real Redis, a real model build or optimize run, or the CLI.
- e2e: real server processes (Servometer, Prometheus, Alertmanager) driven over 127.0.0.1.
- soak: minutes of mixed traffic with faults injected; 30 s in every ``make test``, 300 s with ``make soak``.
"""

# Paths relative to tests/, the most specific first; anything not listed is a unit test.
LAYERS: dict[str, str] = {
    "e2e/test_soak.py": "soak",
    "e2e/": "e2e",
    "grpc_api/test_grpc_server.py": "e2e",
    "grpc_api/test_grpc_drain.py": "e2e",
    "grpc_api/test_grpc_workers.py": "e2e",
    "deploy/": "e2e",
    "grafana/": "e2e",
    "api/": "integration",
    "live/test_pages.py": "integration",
    "routing/": "integration",
    "variants/": "integration",
    "cache/test_faults.py": "integration",
    "cache/test_redis.py": "integration",
    "monitoring/test_feedback.py": "integration",
    "processing/test_text_reference.py": "integration",
    "monitoring/test_judged.py": "integration",
    "repository/test_builder.py": "integration",
    "telemetry/test_accounting.py": "integration",
    "telemetry/test_gpu.py": "integration",
    "test_cli.py": "integration",
}


def layer_of(path: str) -> str:
    """The layer of the test file at ``path`` (relative to tests/, with forward slashes)."""
    for prefix, layer in LAYERS.items():
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return layer
    return "unit"
