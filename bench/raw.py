"""The physical limit: a model's own onnxruntime throughput in this process, by batch size, on one core.

Run pinned (``taskset -c 0 python -m bench.raw ...``); prints one JSON object per batch size.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.payloads import sample_inputs
from bench.sessions import cpu_session


def measure(model_file: Path, inputs: dict[str, np.ndarray], batch: int, seconds: float) -> dict[str, float]:
    """Calls per second and latency of one model call on ``batch`` copies of ``inputs`` (one thread)."""
    session = cpu_session(model_file)
    feed = {name: np.repeat(array, batch, axis=0) for name, array in inputs.items()}
    for _ in range(20):
        session.run(None, feed)
    timings = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        session.run(None, feed)
        timings.append(time.perf_counter() - started)
    median = float(np.median(timings))
    return {"batch": batch, "call_p50_s": median, "samples_per_s": batch / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="demo model name (digits or minilm)")
    parser.add_argument("--file", required=True, type=Path, help="the .onnx file")
    parser.add_argument("--max-batch", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    inputs = sample_inputs(args.model)
    batches = sorted({1, args.max_batch, *(2**k for k in range(1, 12) if 2**k < args.max_batch)})
    for batch in batches:
        print(json.dumps(measure(args.file, inputs, batch, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
