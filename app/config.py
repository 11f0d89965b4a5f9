"""The one settings object: environment variables (prefix ``SERVOMETER_``) and CLI flags.

Per-model settings live in each model's ``model.yaml`` (see :mod:`app.schema.manifest`);
nothing else in the package reads ``os.environ``.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_KEY_LENGTH = 16

MIB = 1024 * 1024
# Inference spans sub-millisecond cache hits to multi-second batches of a large model; the fine steps around
# 1-5 ms are where batches and cache hits of small models land.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


class Settings(BaseSettings):
    """Server-wide settings. Every field can be set as ``SERVOMETER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SERVOMETER_", extra="ignore", use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address to bind. Loopback by default: exposing the gateway is an explicit choice."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port for the HTTP API (0 picks a free port)."""

    grpc_port: int = Field(default=8001, ge=0, le=65535)
    """TCP port for the Open Inference Protocol's gRPC service, on the same host (8001 as Triton); 0 turns gRPC
    off. Served by the same process as HTTP, so one batcher serves both; with several workers each serves it on
    the shared port (SO_REUSEPORT: the kernel spreads connections)."""

    grpc_max_message_bytes: int | None = Field(default=None, ge=1024)
    """Largest gRPC request message (RESOURCE_EXHAUSTED above); unset: ``max_request_bytes``. Responses are bounded
    by ``max_response_bytes``."""

    models: Path = Path("models")
    """The model repository: one folder per model, each with a ``model.yaml``."""

    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes. One is the default; each worker loads every model."""

    worker_dir: Path | None = None
    """Internal, set by ``servometer serve --workers N``: where the workers tell each other they are ready."""

    log_level: str = "info"
    """uvicorn / application log level."""

    access_log: bool = False
    """One log line per HTTP request. Off by default: at thousands of requests a second it costs more than the
    request; the metrics count every request anyway."""

    build_missing: bool = True
    """``serve`` builds missing model files (running each model's ``build.py``) before starting."""

    max_request_bytes: int = Field(default=64 * MIB, ge=1024)
    """Largest request body accepted, counted on the bytes actually read and after decompression (413 above)."""

    max_response_bytes: int = Field(default=64 * MIB, ge=1024)
    """Largest inference response, estimated before it is encoded (400 above: ask for fewer samples or outputs)."""

    max_json_values: int = Field(default=1 << 22, ge=1024)
    """Most values a JSON request may hold (4,194,304), for models whose model.yaml does not bound their inputs
    (``max_shape``); bounded models refuse more than they can take. Checked before the JSON is parsed (413)."""

    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request line plus headers of one request (431 above, and the connection is closed)."""

    header_timeout_s: float = Field(default=10.0, gt=0)
    """How long a connection may take to send a request's line and headers, counted from its first byte (or
    from connecting); past it the connection is answered 408 and closed, so silent connections cannot pile up."""

    body_timeout_s: float = Field(default=60.0, gt=0)
    """How long a request's body may take to arrive once its headers have (408 past it); a stalled upload
    holds no queue place and is not counted in flight."""

    keep_alive_timeout_s: int = Field(default=5, ge=1)
    """How long an idle keep-alive connection stays open between requests."""

    max_connections: int = Field(default=1000, ge=1)
    """Open connections per worker; one more is answered 503 and closed at once (lowered to fit the process's
    file descriptor limit, which is raised as far as the system allows)."""

    cache_backend: Literal["auto", "memory", "redis", "off"] = "auto"
    """Result cache: ``auto`` is Redis when ``redis_url`` is set, else in-memory; ``off`` disables it."""

    cache_max_bytes: int = Field(default=256 * MIB, ge=0)
    """Size bound of the in-memory cache (least recently used entries go first)."""

    redis_url: str | None = None
    """Redis for the shared cache, e.g. ``redis://127.0.0.1:6379/0``."""

    redis_key_prefix: str = "servometer:"
    """Prefix of every key Servometer writes, so it can share a Redis with others."""

    redis_timeout_s: float = Field(default=0.05, gt=0)
    """Longest one Redis call may take before it counts as a miss."""

    redis_max_connections: int = Field(default=64, ge=1)
    """Size of the Redis connection pool."""

    cache_breaker_failures: int = Field(default=3, ge=1)
    """Consecutive cache failures that open the circuit breaker (the backend is then not called)."""

    cache_breaker_reset_s: float = Field(default=1.0, gt=0)
    """First wait before the open breaker probes the backend again; doubles per failed probe, up to 30 s."""

    latency_buckets: list[float] = Field(default_factory=lambda: list(LATENCY_BUCKETS), min_length=1)
    """Upper bounds (seconds) of the latency histograms: end to end, queue, compute. JSON list in the env var."""

    gpu_sample_interval_s: float = Field(default=5.0, gt=0)
    """How often GPU utilization, memory and power are read from NVML (in the background)."""

    triton_gpu_metrics: bool = False
    """Also write GPU lines in Triton's names and format (``nv_gpu_utilization{gpu_uuid=...}``), which
    ``perf_analyzer --collect-metrics --metrics-url .../metrics`` reads."""

    price_per_hour: float = Field(default=0.0, ge=0)
    """What the machine costs per hour (dollars), for the cost metrics; 0 exports zero cost."""

    gpu_price_per_hour: float = Field(default=0.0, ge=0)
    """What one GPU adds per hour (dollars), charged to variants for their compute time on a GPU."""

    report_dir: Path | None = None
    """Where variant reports are kept between restarts; ``<models>/.reports`` when unset. Not writable: memory only."""
    report_at_load: bool = False
    """Measure every model's variant report in the background once loaded (always done for ``fastest_within``)."""
    allow_model_code: bool = False
    """Let ``python`` processing steps run the model folders' own ``process.py`` in the server's process. Off: a
    model with such a step is not served (the management API could otherwise load code dropped in a folder)."""

    api_keys: list[str] = Field(default_factory=list)
    """Keys that may call inference and model routes (``Authorization: Bearer <key>``); empty: open. JSON list."""
    management_api_key: str | None = None
    """Enables the model repository API (``/v2/repository/...``: index, load, unload) behind this key; unset: off."""
    feedback_api_key: str | None = None
    """When set, ``POST /v2/models/{model}/feedback`` needs this key (or the management key) and inference keys
    are refused there: whoever may judge answers moves live accuracy, which pages the on-call."""
    feedback_secret: str | None = None
    """Signs the response ids that feedback refers to. Set the same value on every replica (and it is shared by
    the workers of one ``serve``), or feedback reaching another process is refused as unknown; unset: drawn at
    start, so ids die with the process."""
    public_paths: list[str] = Field(default_factory=lambda: ["/metrics", "/docs", "/openapi.json"])
    """With keys set, every route needs a key except the health probes and these paths (and what lies below
    them). JSON list; ``[]`` closes /metrics and the docs too."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve ``/metrics`` only on this port (same host), not on the API's; unset: on the API's port."""
    ui: bool = True
    """The live page at ``/`` (on ``metrics_port`` when that is set): this worker's telemetry over the last 15
    minutes, its objectives and variant reports. Read-only; its data needs an API key when keys are set."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (CORS); empty: none. JSON list."""

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, keys: list[str]) -> list[str]:
        if any(len(key) < MIN_KEY_LENGTH for key in keys):
            raise ValueError(f"API keys must be at least {MIN_KEY_LENGTH} characters (128 bits of randomness)")
        return keys

    @field_validator("management_api_key", "feedback_api_key", "feedback_secret")
    @classmethod
    def _long_secret(cls, key: str | None) -> str | None:
        if key is not None and len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"keys and secrets must be at least {MIN_KEY_LENGTH} characters")
        return key

    loop_lag_interval_s: float = Field(default=0.5, gt=0)
    """How often the event loop's lag is sampled, from a thread of its own (``servometer_event_loop_lag_seconds``)."""

    loop_stall_s: float = Field(default=5.0, ge=0)
    """When the event loop has not run for this long, log the stack of every thread once, to show where it hangs;
    0: never."""

    drain_timeout_s: float = Field(default=30.0, ge=0)
    """On shutdown, how long queued and running requests get to finish before they are failed."""

    onnx_providers: list[str] = Field(default_factory=list)
    """ONNX Runtime execution providers in order of preference; empty picks TensorRT / CUDA when present, else CPU."""

    onnx_intra_op_threads: int = Field(default=0, ge=0)
    """Threads ONNX Runtime uses inside one operator; 0 lets it choose."""

    onnx_inter_op_threads: int = Field(default=0, ge=0)
    """Threads ONNX Runtime uses across operators; 0 lets it choose."""

    @field_validator("latency_buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(value, value[1:], strict=False)) or value[0] <= 0:
            raise ValueError("latency_buckets must be positive and strictly increasing")
        return value

    torch_threads: int = Field(default=0, ge=0)
    """Intra-op threads for TorchScript variants; 0 keeps torch's default."""
