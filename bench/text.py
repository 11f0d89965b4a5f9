"""Text traffic: minilm with real sentence lengths (models/minilm/texts.txt, 6 to 127 tokens), one text per request.

Rows at concurrency 1, 8, 32 and 64, the server on core 0 (one onnxruntime thread, cache off) and wrk
(bench/bodies.lua, each request the next text) on core 1:
- text: `minilm`, text in, tokenized per batch and cut into calls of similar lengths (max_batch_tokens);
- ids: `minilm-ids`, each text tokenized by the client, exact-shape batching (only equal lengths share a call);
- raw: the same texts through onnxruntime alone on core 0, at the best length-sorted padded batch (the limit).
Writes bench/TEXT_RESULTS.md, bench/text.json and bench/plots/text.png. `python -m bench.text` (about 6 minutes).
"""

import argparse
import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tokenizers import Tokenizer

from bench import loadgen
from bench.profile import _server_pid
from bench.servers import SERVER_CPU, repository_with, servometer
from bench.sessions import cpu_session
from tests.helpers import MODELS, free_port

HERE = Path(__file__).resolve().parent
CONCURRENCY = (1, 8, 32, 64)
LATENCY_ROUNDS = 5
LOADGEN_CPU = int(loadgen.LOADGEN_CPU)


def progress(message: str) -> None:
    print(f"[bench.text {time.strftime('%H:%M:%S')}] {message}", flush=True)


def tokenized(texts: list[str]) -> list[list[int]]:
    tokenizer = Tokenizer.from_file(str(MODELS / "minilm" / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()
    return [encoding.ids for encoding in tokenizer.encode_batch(texts)]


def raw_limit(session: Any, ids: list[list[int]], seconds: float) -> dict[str, Any]:
    """onnxruntime alone on the server's core: samples/s at the best length-sorted, padded batch size."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    best: dict[str, Any] = {}
    with on_server_core():
        for batch in (4, 8, 16, 32):
            feeds = [_padded([ids[i] for i in order[start : start + batch]]) for start in range(0, len(order), batch)]
            for feed in feeds[:3]:
                session.run(None, feed)
            rounds, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                for feed in feeds:
                    session.run(None, feed)
                rounds += 1
            rate = rounds * len(ids) / (time.perf_counter() - started)
            progress(f"raw onnxruntime, length-sorted batches of {batch}: {rate:.1f} samples/s")
            if rate > best.get("samples_per_s", 0):
                best = {"batch": batch, "samples_per_s": rate}
    return best


def raw_alone(session: Any, ids: list[list[int]], requests: int) -> tuple[float, float]:
    """Mean and p99 of onnxruntime calls of one text each, alone on the server's core, for the ``requests`` texts
    one wrk connection sent in turn (:func:`sent_order`): the same texts, as often, as the server got them."""
    order = sent_order(len(ids))
    times = []
    with on_server_core():
        for turn in range(requests):
            feed = _padded([ids[order[turn % len(order)]]])
            started = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - started)
    return float(np.mean(times)), float(np.percentile(times, 99))


@contextlib.contextmanager
def on_server_core() -> Iterator[None]:
    os.sched_setaffinity(0, {int(SERVER_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, {LOADGEN_CPU})


def sent_order(count: int) -> list[int]:
    """The order bench/bodies.lua sends the texts in (one shuffle, the same every run)."""
    order = list(range(count))
    random.Random(0).shuffle(order)
    return order


def _padded(rows: list[list[int]]) -> dict[str, np.ndarray]:
    width = max(len(row) for row in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = row
        mask[index, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def text_body(text: str) -> bytes:
    return json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}).encode()


def ids_body(tokens: list[int]) -> bytes:
    shape = [1, len(tokens)]
    return json.dumps({"inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": shape, "data": tokens},
        {"name": "attention_mask", "datatype": "INT64", "shape": shape, "data": [1] * len(tokens)},
    ]}).encode()  # fmt: skip


def bodies_file(bodies: list[bytes], folder: Path, name: str) -> Path:
    """The bodies, one a line, in :func:`sent_order`, for bench/bodies.lua."""
    order = sent_order(len(bodies))
    path = folder / f"{name}.jsonl"
    path.write_bytes(b"\n".join(bodies[index] for index in order) + b"\n")
    return path


def load(url: str, bodies: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    """wrk on core 1: ``concurrency`` connections in a closed loop, each sending the next body."""
    measured = loadgen.wrk_bodies(url, bodies, concurrency, seconds)
    return {
        "concurrency": concurrency,
        "samples_per_s": measured.requests_per_s,
        "p50_s": measured.p50_s,
        "p99_s": measured.p99_s,
        "mean_s": measured.mean_s,
        "errors": measured.errors,
    }


def server_figures(address: str, model: str) -> dict[str, float]:
    """Mean batch size (requests per dispatch) and the tokens computed per token sent, from /metrics."""
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if f'model="{model}"' in line and 'variant="fp32"' in line and not line.startswith("#"):
            name = line.split("{")[0] + ("|" + line.split('kind="')[1].split('"')[0] if 'kind="' in line else "")
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    batches = values.get("servometer_batch_size_count", 0.0)
    sent = values.get("servometer_tokens_total|sent", 0.0)
    return {
        "samples": values.get("servometer_batch_size_sum", 0.0),
        "batches": batches,
        "tokens_sent": sent,
        "tokens_computed": values.get("servometer_tokens_total|computed", 0.0),
    }


def pinned_threads(pid: int) -> list[str]:
    """Threads of ``pid`` allowed anywhere but the server's core (empty: every thread stayed on it)."""
    strays = []
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        if fields.get("Cpus_allowed_list", "").strip() != SERVER_CPU:
            strays.append(f"{fields.get('Name', '?').strip()}: {fields.get('Cpus_allowed_list', '').strip()}")
    return strays


def _fp32_only(manifest: dict[str, Any]) -> None:
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] == "fp32"]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    texts = (MODELS / "minilm" / "texts.txt").read_text(encoding="utf-8").splitlines()
    ids = tokenized(texts)
    lengths = [len(tokens) for tokens in ids]
    progress(f"{len(texts)} texts of {min(lengths)} to {max(lengths)} tokens (median {int(np.median(lengths))})")
    session = cpu_session(MODELS / "minilm" / "model.fp32.onnx")
    raw = raw_limit(session, ids, args.seconds)
    results: dict[str, Any] = {"raw": raw, "lengths": lengths, "rows": [], "latency": [], "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as scratch:
        models = repository_with(MODELS, Path(scratch) / "models", _fp32_only)
        port = free_port()
        with servometer(models, port, Path(scratch) / "server.log") as address:
            pid = _server_pid(port)
            for route, model, bodies in (
                ("text", "minilm", bodies_file([text_body(text) for text in texts], Path(scratch), "text")),
                ("ids", "minilm-ids", bodies_file([ids_body(tokens) for tokens in ids], Path(scratch), "ids")),
            ):
                url = f"http://{address}/v2/models/{model}/infer"
                load(url, bodies, 8, 2.0)  # warm: first calls of each length allocate
                for concurrency in CONCURRENCY:
                    before = server_figures(address, model)
                    row = load(url, bodies, concurrency, args.seconds)
                    after = server_figures(address, model)
                    delta = {key: after[key] - before[key] for key in after}
                    row["route"] = route
                    row["mean_batch"] = delta["samples"] / max(delta["batches"], 1)
                    row["padding"] = delta["tokens_computed"] / delta["tokens_sent"] if delta["tokens_sent"] else None
                    row["share_of_raw"] = row["samples_per_s"] / raw["samples_per_s"]
                    progress(f"{route} c={concurrency}: {row['samples_per_s']:.1f} samples/s "
                             f"({row['share_of_raw']:.0%} of raw), batch {row['mean_batch']:.1f}, "
                             f"p50 {row['p50_s'] * 1000:.1f} ms, p99 {row['p99_s'] * 1000:.1f} ms")  # fmt: skip
                    results["rows"].append(row)
            text_url, text_bodies = f"http://{address}/v2/models/minilm/infer", Path(scratch) / "text.jsonl"
            for round_ in range(LATENCY_ROUNDS):
                served = load(text_url, text_bodies, 1, args.seconds)
                requests = round(served["samples_per_s"] * args.seconds)
                raw_mean, raw_p99 = raw_alone(session, ids, requests)
                pair = {"requests": requests, "server_mean_s": served["mean_s"], "server_p99_s": served["p99_s"],
                        "raw_mean_s": raw_mean, "raw_p99_s": raw_p99}  # fmt: skip
                progress(f"c=1 latency round {round_ + 1}: server mean {served['mean_s'] * 1000:.2f} ms, "
                         f"p99 {served['p99_s'] * 1000:.2f} ms; the same texts alone mean {raw_mean * 1000:.2f} ms, "
                         f"p99 {raw_p99 * 1000:.2f} ms")  # fmt: skip
                results["latency"].append(pair)
            results["stray_threads"] = pinned_threads(pid)
    return results


def write(results: dict[str, Any]) -> None:
    raw, rows = results["raw"], results["rows"]
    text32 = next(row for row in rows if row["route"] == "text" and row["concurrency"] == 32)
    added = [pair["server_p99_s"] - pair["raw_p99_s"] for pair in results["latency"]]
    median_added = float(np.median(added))
    mean_added = float(np.median([pair["server_mean_s"] - pair["raw_mean_s"] for pair in results["latency"]]))
    lines = [
        "# Text traffic: minilm with real sentence lengths",
        "",
        f"`python -m bench.text` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
        f"{len(results['lengths'])} texts of models/minilm/texts.txt ({min(results['lengths'])} to "
        f"{max(results['lengths'])} tokens, median {int(np.median(results['lengths']))}), one text per request, "
        "cache off. Server on core 0 with one onnxruntime thread, wrk (bench/bodies.lua) on core 1; every server "
        "thread was allowed core 0 only (read from /proc after the runs): "
        f"{'yes' if not results['stray_threads'] else 'NO: ' + ', '.join(results['stray_threads'])}.",
        "",
        f"Raw limit: onnxruntime alone on core 0, length-sorted batches of {raw['batch']} padded to their longest: "
        f"**{raw['samples_per_s']:.1f} samples/s**.",
        "",
        "| route | concurrency | samples/s | share of raw | mean batch | tokens computed / sent | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        padding = "n/a" if row["padding"] is None else f"{row['padding']:.2f}"
        lines.append(
            f"| {row['route']} | {row['concurrency']} | {row['samples_per_s']:.1f} | {row['share_of_raw']:.0%} | "
            f"{row['mean_batch']:.1f} | {padding} | {row['p50_s'] * 1000:.1f} | {row['p99_s'] * 1000:.1f} |"
        )
    lines += [
        "",
        f"Latency at concurrency 1, in {len(added)} rounds: the text route for {results['seconds']:.0f} s (wrk), then "
        "onnxruntime alone on core 0 calling the same texts one at a time, in the same order, as many as were served:",
        "",
        "| round | requests | server mean ms | alone mean ms | added to the mean ms | server p99 ms | alone p99 ms "
        "| added to p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        *(_latency_row(index, pair) for index, pair in enumerate(results["latency"])),
        "",
        "Targets (issue 17):",
        f"- text at concurrency 32 >= 85% of the raw limit: {text32['share_of_raw']:.0%} "
        f"({'met' if text32['share_of_raw'] >= 0.85 else 'not met'}).",
        f"- text at concurrency 1, p99 within 1 ms of onnxruntime's own calls on the same texts: the median of "
        f"{len(added)} rounds adds {median_added * 1000:.2f} ms ({'met' if median_added <= 0.001 else 'not met'}); "
        f"to the mean it adds {mean_added * 1000:.2f} ms (the median of the rounds).",
        "",
        "`ids` is the same load as token ids through exact-shape batching: only texts of equal length share a call.",
        "",
        "![samples/s by concurrency](plots/text.png)",
    ]
    (HERE / "TEXT_RESULTS.md").write_text("\n".join(lines) + "\n")
    (HERE / "text.json").write_text(json.dumps(results, indent=1) + "\n")
    _plot(results)


def _latency_row(index: int, pair: dict[str, Any]) -> str:
    cells = [str(index + 1), str(pair["requests"])]
    for figure in ("mean", "p99"):
        server, raw = pair[f"server_{figure}_s"] * 1000, pair[f"raw_{figure}_s"] * 1000
        cells += [f"{server:.2f}", f"{raw:.2f}", f"{server - raw:.2f}"]
    return "| " + " | ".join(cells) + " |"


def _plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for route, label in (("text", "minilm: text, batched by length"), ("ids", "minilm-ids: exact-shape batching")):
        rows = [row for row in results["rows"] if row["route"] == route]
        axis.plot([r["concurrency"] for r in rows], [r["samples_per_s"] for r in rows], marker="o", label=label)
    axis.axhline(results["raw"]["samples_per_s"], color="grey", linestyle="--", label="raw onnxruntime limit")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("concurrency (one text per request)")
    axis.set_ylabel("samples/s (one core)")
    axis.set_title("MiniLM on texts of 6-127 tokens")
    axis.legend()
    figure.tight_layout()
    figure.savefig(HERE / "plots" / "text.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="per row")
    args = parser.parse_args()
    os.sched_setaffinity(0, {LOADGEN_CPU})
    write(measure(args))


if __name__ == "__main__":
    main()
