"""Per-variant counts and cumulative durations in the schema of Triton's statistics extension.

perf_analyzer reads these (``GET /v2/models/{m}/stats``) to print the server-side queue / compute split, and
users without Prometheus get the same figures as JSON. Semantics follow Triton: ``success`` and ``queue``
include cache hits, ``compute_*`` exclude them, ``inference_count`` counts samples computed by the model and
``execution_count`` model calls.
"""

import time
from dataclasses import dataclass, field
from typing import Any

PARTS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class VariantStats:
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    cache_hit: Duration = field(default_factory=Duration)
    cache_miss: Duration = field(default_factory=Duration)

    def answered(self, ok: bool, seconds: float) -> None:
        (self.success if ok else self.fail).add(seconds)
        self.last_inference_ms = int(time.time() * 1000)

    def to_triton(self, name: str, version: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {part: getattr(self, part).as_dict() for part in PARTS},
            "batch_stats": [],
        }
