"""The live page's cost under load: what its once-a-second sampling takes from a busy worker, and what an open page
(polling its documents every second) adds.

Two Servometers on core 0 (one onnxruntime thread, cache off, the demo repository): one with the page off
(SERVOMETER_UI=false), one with it on. wrk on core 1 posts one digits image per request (JSON) at concurrency 32;
rounds alternate three runs: off, on (sampling, nobody watching), watched (on, and a poller on core 1 fetching
what an open page fetches every second: the overview and digits/fp32's series since its last sample). Reported:
median requests/s of each and its ratio to off, and the sampler's share of the worker's CPU time over each run
(its own CPU time, from the page's overview, against the process's utime + stime from /proc).
Writes bench/LIVE_RESULTS.md, bench/live.json and bench/plots/live.png. `python -m bench.live` (about 6 minutes).
"""

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import loadgen
from bench.payloads import json_body, sample_inputs
from bench.profile import _server_pid
from bench.servers import SERVER_CPU, servometer
from bench.text import pinned_threads
from tests.helpers import MODELS, free_port

HERE = Path(__file__).resolve().parent
CONCURRENCY = 32
KINDS = ("off", "on", "watched")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: T201


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sampler_cpu_s(address: str) -> float:
    return float(httpx.get(f"http://{address}/ui/api/overview").json()["sampler"]["cpu_seconds"])


class Watcher:
    """What an open page fetches, once a second, until stopped."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.stop = threading.Event()
        self.fetched = 0
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        since = None
        with httpx.Client(base_url=f"http://{self.address}", timeout=10) as client:
            while not self.stop.wait(1.0):
                client.get("/ui/api/overview").raise_for_status()
                query = "" if since is None else f"?since={since}"
                series = client.get(f"/ui/api/models/digits/variants/fp32/series{query}").json()
                since = series["t"][-1] if series["t"] else since
                self.fetched += 1

    def __enter__(self) -> "Watcher":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def run(kind: str, address: str, body: Path, seconds: float) -> dict[str, Any]:
    pid = _server_pid(int(address.rsplit(":", 1)[1]))
    url = f"http://{address}/v2/models/digits/infer"
    sampled_before = 0.0 if kind == "off" else sampler_cpu_s(address)
    cpu_before = process_cpu_s(pid)
    if kind == "watched":
        with Watcher(address) as watcher:
            measured = loadgen.wrk(url, body, None, CONCURRENCY, seconds)
        fetched = watcher.fetched
    else:
        measured, fetched = loadgen.wrk(url, body, None, CONCURRENCY, seconds), 0
    process_s = process_cpu_s(pid) - cpu_before
    sampler_s = None if kind == "off" else sampler_cpu_s(address) - sampled_before
    return {
        "kind": kind,
        "requests_per_s": measured.requests_per_s,
        "p99_s": measured.p99_s,
        "errors": measured.errors,
        "process_cpu_s": process_s,
        "sampler_cpu_s": sampler_s,
        "sampler_share": None if sampler_s is None else sampler_s / process_s,
        "page_fetches": fetched,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        body = Path(scratch) / "digits.json"
        body.write_bytes(json_body(sample_inputs("digits")))
        off_port, on_port = free_port(), free_port()
        log = Path(scratch)
        with (
            servometer(MODELS, off_port, log / "off.log", {"SERVOMETER_UI": "false"}) as off,
            servometer(MODELS, on_port, log / "on.log") as on,
        ):
            addresses = {"off": off, "on": on, "watched": on}
            for kind in ("off", "on"):
                loadgen.wrk(f"http://{addresses[kind]}/v2/models/digits/infer", body, None, CONCURRENCY, 3.0)  # warm
            for round_ in range(args.rounds):
                for kind in KINDS:
                    row = run(kind, addresses[kind], body, args.seconds)
                    row["round"] = round_
                    share = "" if row["sampler_share"] is None else f", sampler {row['sampler_share']:.3%} of CPU"
                    progress(f"round {round_ + 1} {kind}: {row['requests_per_s']:.0f} req/s{share}")
                    rows.append(row)
            strays = pinned_threads(_server_pid(off_port)) + pinned_threads(_server_pid(on_port))
    return {"rows": rows, "stray_threads": strays, "seconds": args.seconds, "concurrency": CONCURRENCY}


def _median(rows: list[dict[str, Any]], kind: str, field: str) -> float:
    return float(statistics.median(row[field] for row in rows if row["kind"] == kind))


def write(results: dict[str, Any]) -> None:
    rows = results["rows"]
    off = _median(rows, "off", "requests_per_s")
    pinned = "yes" if not results["stray_threads"] else "NO: " + ", ".join(results["stray_threads"])
    lines = [
        "# The live page's cost under load",
        "",
        f"`python -m bench.live` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): digits, one image per "
        f"request, wrk at concurrency {results['concurrency']} on core 1 for {results['seconds']:g} s per run; the "
        "servers on core 0 (one onnxruntime thread, cache off); rounds alternate the three runs, medians of "
        f"{len(rows) // len(KINDS)} rounds. Every server thread stayed on core {SERVER_CPU} (read from /proc): "
        f"{pinned}.",
        "",
        "| page | requests/s | against off | p99 ms | sampler's share of the worker's CPU |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        rate = _median(rows, kind, "requests_per_s")
        share = "–" if kind == "off" else f"{_median(rows, kind, 'sampler_share'):.3%}"
        lines.append(
            f"| {kind} | {rate:.0f} | {rate / off:.1%} | {_median(rows, kind, 'p99_s') * 1000:.2f} | {share} |"
        )
    lines += ["", "Every run:", "", "| round | page | requests/s | sampler CPU s | worker CPU s | page fetches |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        sampler = "–" if row["sampler_cpu_s"] is None else f"{row['sampler_cpu_s']:.3f}"
        lines.append(f"| {row['round'] + 1} | {row['kind']} | {row['requests_per_s']:.0f} | {sampler} | "
                     f"{row['process_cpu_s']:.2f} | {row['page_fetches']} |")  # fmt: skip
    (HERE / "LIVE_RESULTS.md").write_text("\n".join(lines) + "\n")
    (HERE / "live.json").write_text(json.dumps(results, indent=1))
    _plot(rows)


def _plot(rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    medians = [_median(rows, kind, "requests_per_s") for kind in KINDS]
    axis.bar(KINDS, medians, color=["#a0aec0", "#3182ce", "#2f855a"])
    for kind_index, kind in enumerate(KINDS):
        runs = [row["requests_per_s"] for row in rows if row["kind"] == kind]
        axis.scatter([kind_index] * len(runs), runs, color="black", s=10, zorder=3)
    axis.set_ylabel("requests/s (digits, c=32)")
    axis.set_title("The live page: off, sampling, and watched")
    figure.tight_layout()
    figure.savefig(HERE / "plots" / "live.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(loadgen.LOADGEN_CPU)})
    write(measure(args))


if __name__ == "__main__":
    main()
