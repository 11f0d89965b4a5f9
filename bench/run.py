"""Reproduce the batching benchmark: ``python -m bench.run`` (``make bench``) writes bench/RESULTS.md.

1. The raw limit: each demo model's own onnxruntime throughput at batch sizes 1..max_batch_size on one core.
2. Servometer pinned to core 0 (batching on, then off), the naive FastAPI endpoint the same way, each driven by
   wrk pinned to core 1 with the same bodies, JSON and binary, at each concurrency.
3. perf_analyzer as a second opinion on Servometer.
Medians per run; every figure in one report comes from one run of this command.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from app.repository.builder import build_models
from app.schema.manifest import load_manifest
from bench import loadgen, overhead, payloads, report, servers

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CONCURRENCY = (1, 8, 32, 64)
PORT = 8190


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def raw_limits(model: str, max_batch: int, seconds: float) -> list[dict[str, float]]:
    command = [
        "taskset", "-c", servers.SERVER_CPU, sys.executable, "-m", "bench.raw", "--model", model,
        "--file", str(payloads.repository(model) / model / "model.fp32.onnx"), "--max-batch", str(max_batch),
        "--seconds", str(seconds),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE.parent).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def write_bodies(model: str) -> dict[str, tuple[Path, int | None]]:
    inputs = payloads.sample_inputs(model)
    OUT.mkdir(exist_ok=True)
    json_file, binary_file = OUT / f"{model}.json.body", OUT / f"{model}.binary.body"
    json_file.write_bytes(payloads.json_body(inputs))
    body, header_length = payloads.binary_body(inputs)
    binary_file.write_bytes(body)
    return {"json": (json_file, None), "binary": (binary_file, header_length)}


def load_rows(
    server: str, address: str, model: str, bodies: dict[str, tuple[Path, int | None]], args: argparse.Namespace
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    url = f"http://{address}/v2/models/{model}/infer"
    for tensors, (body, header_length) in bodies.items():
        for concurrency in args.concurrency:
            progress(f"  {server} {model} {tensors} c={concurrency}")
            loadgen.wrk(url, body, header_length, concurrency, args.warmup)
            result = loadgen.wrk(url, body, header_length, concurrency, args.seconds)
            rows.append({"server": server, "tensors": tensors, "concurrency": concurrency, **asdict(result)})
    return rows


def perf_analyzer_rows(address: str, model: str, args: argparse.Namespace) -> list[dict[str, object]]:
    command = loadgen.perf_analyzer_command()
    if command is None:
        progress("  perf_analyzer not found: skipping the second opinion")
        return []
    extra: list[str] = []
    if model == "minilm-ids":
        data = OUT / "minilm-ids.perf_analyzer.json"
        sample = payloads.sample_inputs(model)
        data.write_text(json.dumps({"data": [{name: array.reshape(-1).tolist() for name, array in sample.items()}]}))
        extra = ["--input-data", str(data), "--shape", f"input_ids:{payloads.MINILM_TOKENS}",
                 "--shape", f"attention_mask:{payloads.MINILM_TOKENS}"]  # fmt: skip
    rows: list[dict[str, object]] = []
    for concurrency in args.concurrency:
        progress(f"  perf_analyzer {model} c={concurrency}")
        try:
            result = loadgen.perf_analyzer(command, model, address, concurrency, extra, args.seconds)
        except (subprocess.CalledProcessError, ValueError) as exc:
            progress(f"  perf_analyzer failed: {exc}")
            continue
        rows.append({"server": "servometer", "tensors": "binary", "concurrency": concurrency, **asdict(result)})
    return rows


def telemetry_overhead(bodies: dict[str, tuple[Path, int | None]], args: argparse.Namespace) -> dict[str, object]:
    """digits, binary, concurrency 32: Servometer with and without its request-path telemetry, alternated three
    times; the medians and their ratio."""
    body, header_length = bodies["binary"]
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for attempt in range(3):
        for state in ("on", "off"):
            progress(f"  telemetry {state}, digits binary c=32 ({attempt + 1}/3)")
            log = OUT / f"servometer-telemetry-{state}.log"
            entry = "app" if state == "on" else "bench.telemetry_off"
            with servers.servometer(payloads.MODELS, PORT + 3, log, entry=entry) as address:
                url = f"http://{address}/v2/models/digits/infer"
                loadgen.wrk(url, body, header_length, 32, args.warmup)
                rates[state].append(loadgen.wrk(url, body, header_length, 32, args.seconds).requests_per_s)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"on": rates["on"], "off": rates["off"], "median_on": on, "median_off": off, "overhead": 1 - on / off}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits", "minilm-ids", "mlp"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCY))
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run")
    parser.add_argument("--no-perf-analyzer", action="store_true")
    parser.add_argument("--no-telemetry-check", action="store_true", help="skip the telemetry on/off comparison")
    parser.add_argument("--no-comparisons", action="store_true", help="skip the alternated comparisons")
    args = parser.parse_args()

    for repository in (payloads.MODELS, payloads.BENCH_MODELS):
        build_models(repository, [m for m in args.models if payloads.repository(m) == repository] or None)
    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": {"seconds": args.seconds, "warmup": args.warmup},
        "models": {},
    }
    for model in args.models:
        results["models"][model] = measure_model(model, args)  # type: ignore[index]
    if not args.no_comparisons:
        with tempfile.TemporaryDirectory() as scratch, servers.revision(overhead.BEFORE, Path(scratch)) as tree:
            results["before"] = {
                load: found
                for model, tensors in (("mlp", "json"), ("digits", "binary"))
                if model in args.models
                for load, found in overhead.against_before(tree, model, write_bodies(model)[tensors], args, OUT).items()
            }
        if "digits" in args.models:
            results["defaults"] = overhead.defaults_against_off(write_bodies("digits"), args, OUT)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    report.write(results, HERE)
    progress(f"wrote {HERE / 'RESULTS.md'} and plots in {HERE / 'plots'}")


def measure_model(model: str, args: argparse.Namespace) -> dict[str, object]:
    repository = payloads.repository(model)
    manifest = load_manifest(repository / model)
    progress(f"{model}: raw onnxruntime limit, batch 1..{manifest.batching.max_batch_size}, one core")
    raw = raw_limits(model, manifest.batching.max_batch_size, max(1.0, args.seconds / 3))
    bodies = write_bodies(model)
    rows: list[dict[str, object]] = []
    progress(f"{model}: Servometer, batching on")
    with servers.servometer(repository, PORT, OUT / "servometer.log") as address:
        rows += load_rows("servometer", address, model, bodies, args)
        answers = overhead.capture(address, model, bodies, OUT)
        second = [] if args.no_perf_analyzer or model == "mlp" else perf_analyzer_rows(address, model, args)
    progress(f"{model}: Servometer, batching off")
    unbatched = servers.repository_without_batching(repository, OUT / "repository-unbatched")
    with servers.servometer(unbatched, PORT + 1, OUT / "servometer-unbatched.log") as address:
        rows += load_rows("servometer (batching off)", address, model, bodies, args)
    if model == "digits":
        progress(f"{model}: Servometer as the demo configures it, every request new")
        rows += overhead.defaults_rows(model, bodies, args, OUT)
    progress(f"{model}: naive FastAPI endpoint, hand-written FastAPI + orjson endpoint, bare ASGI floor")
    with servers.naive(repository / model / "model.fp32.onnx", PORT + 2, OUT / "naive.log") as address:
        rows += load_rows("naive", address, model, bodies, args)
    rows += overhead.reference_rows(model, answers, bodies, args, OUT)
    found: dict[str, object] = {
        "max_queue_delay_ms": manifest.batching.max_queue_delay_ms,
        "max_batch_size": manifest.batching.max_batch_size,
        "raw": raw,
        "wrk": rows,
        "perf_analyzer": second,
    }
    if model == "digits" and not args.no_telemetry_check:
        progress("digits: telemetry on vs off")
        found["telemetry"] = telemetry_overhead(bodies, args)
    return found


if __name__ == "__main__":
    main()
