"""The cache benchmark: ``python -m bench.cache`` (part of ``make bench``) writes bench/CACHE_RESULTS.md.

digits, JSON, one sample per request, Servometer pinned to core 0 and wrk to core 1, with the in-memory
cache and with Redis (a redis-server of its own on core 1): 100% hits, 0% hits and an 80/20 mix. Besides
wrk's client-side percentiles, the server-side p50 comes from Servometer's own latency histogram.
"""

import argparse
import itertools
import os
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen, payloads, servers

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PORT = 8290
REPEATS = 3
MODES = ("hit", "miss", "mix")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _histogram(address: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of digits/fp32 end-to-end latency."""
    text = httpx.get(f"http://{address}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "servometer_request_duration_seconds":
            return sorted(
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name.endswith("_bucket")
                and s.labels.get("model") == "digits"
                and s.labels.get("variant") == "fp32"
            )
    return []


def server_p50(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float:
    """The median of the requests between two scrapes, interpolated within its histogram bucket."""
    counts = [(bound, b - a) for (bound, b), (_, a) in zip(after, before, strict=True)]
    total = counts[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= total / 2:
            inside = cumulative - below
            return lower + (bound - lower) * ((total / 2 - below) / inside if inside else 0)
        lower, below = bound, cumulative
    return float("nan")


_RUNS = itertools.count()


def run(address: str, mode: str, concurrency: int, seconds: float, rest: str) -> dict[str, object]:
    # Every run's "new" requests start from their own range, so a later run never repeats an earlier one's
    # (float32 keeps integers below 2**24 exact: 100,000 per run is far more than a run sends).
    first_new = 1_000_000 + 100_000 * next(_RUNS)
    env = {**os.environ, "CACHE_MODE": mode, "REST_OF_IMAGE": rest, "FIRST_NEW": str(first_new)}
    url = f"http://{address}/v2/models/digits/infer"
    command = [
        "taskset", "-c", loadgen.LOADGEN_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
        "--latency", "-s", str(HERE / "cache.lua"), url,
    ]  # fmt: skip
    if mode == "hit":  # cache the one request first
        subprocess.run([*command[:6], "-d1s", *command[7:]], env=env, capture_output=True, check=True)
    before = _histogram(address)
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    measured = loadgen.parse_wrk(output)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "requests_per_s": measured.requests_per_s,
        "p50_s": measured.p50_s,
        "p99_s": measured.p99_s,
        "server_p50_s": server_p50(before, _histogram(address)),
        "errors": measured.errors,
    }


def median_of(runs: list[dict[str, object]]) -> dict[str, object]:
    """Each figure's median over repeated runs (the noisy 2-core machine makes one run an anecdote)."""
    merged: dict[str, object] = {"mode": runs[0]["mode"], "concurrency": runs[0]["concurrency"]}
    for name in ("requests_per_s", "p50_s", "p99_s", "server_p50_s"):
        merged[name] = statistics.median(float(str(r[name])) for r in runs)
    merged["errors"] = sum(int(str(r["errors"])) for r in runs)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    rest = ",".join(str(float(v)) for v in payloads.sample_inputs("digits")["image"].reshape(-1)[1:])
    rows: list[dict[str, object]] = []
    redis_port = PORT + 10
    redis = subprocess.Popen(
        [
            "taskset",
            "-c",
            loadgen.LOADGEN_CPU,
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(OUT),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
    )
    try:
        for backend, env in (
            ("memory", {"SERVOMETER_CACHE_BACKEND": "memory"}),
            (
                "redis",
                {"SERVOMETER_CACHE_BACKEND": "redis", "SERVOMETER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"},
            ),
        ):
            with servers.servometer(payloads.MODELS, PORT, OUT / f"cache-{backend}.log", env) as address:
                for mode in MODES:
                    progress(f"{backend} backend, {mode}, c={args.concurrency}, {REPEATS} runs")
                    runs = [run(address, mode, args.concurrency, args.seconds, rest) for _ in range(REPEATS)]
                    rows.append({"backend": backend, **median_of(runs)})
        progress("no cache, for reference")
        with servers.servometer(payloads.MODELS, PORT, OUT / "cache-off.log") as address:
            runs = [run(address, "miss", args.concurrency, args.seconds, rest) for _ in range(REPEATS)]
            rows.append({"backend": "off", **median_of(runs)})
    finally:
        redis.terminate()
        redis.wait()
    write(rows, args)


def write(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Cache benchmark",
        "",
        f"One run of `python -m bench.cache` ({when}): digits, JSON, one sample per request, concurrency "
        f"{args.concurrency}; each row is the median of {REPEATS} runs of {args.seconds:g} s. Servometer on core 0; "
        "wrk and redis-server on core 1. "
        "`server p50` is the median of Servometer's own end-to-end latency histogram over the run (interpolated "
        "within its bucket); p50/p99 are wrk's, client side.",
        "",
        "| backend | traffic | requests/s | server p50 ms | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    names = {"hit": "100% hits", "miss": "0% hits", "mix": "80/20 mix"}
    hits: dict[str, float] = {}
    for row in rows:
        figures = {name: float(str(row[name])) for name in ("requests_per_s", "server_p50_s", "p50_s", "p99_s")}
        if row["mode"] == "hit":
            hits[str(row["backend"])] = figures["server_p50_s"]
        lines.append(
            f"| {row['backend']} | {names[str(row['mode'])]} | {figures['requests_per_s']:,.0f} | "
            f"{figures['server_p50_s'] * 1000:.3f} | {figures['p50_s'] * 1000:.2f} | {figures['p99_s'] * 1000:.2f} | "
            f"{row['errors']} |"
        )
    memory, redis = hits.get("memory", float("nan")), hits.get("redis", float("nan"))
    lines += [
        "",
        f"Targets at concurrency {args.concurrency}: a memory-cache hit under 1 ms p50 at the server: "
        f"**{memory * 1000:.3f} ms** ({'met' if memory < 0.001 else 'not met'}); a Redis hit under 2 ms: "
        f"**{redis * 1000:.3f} ms** ({'met' if redis < 0.002 else 'not met'}).",
    ]
    (HERE / "CACHE_RESULTS.md").write_text("\n".join(lines) + "\n")
    progress(f"wrote {HERE / 'CACHE_RESULTS.md'}")


if __name__ == "__main__":
    main()
