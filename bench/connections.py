"""What the connection limits cost: ``python -m bench.connections`` writes bench/CONNECTIONS.md.

Servometer pinned to core 0 with its guarded HTTP protocol (header timeout, header-size limit, connection cap:
app/api/connections.py) and with uvicorn's plain httptools protocol, alternated three times, each driven by wrk
pinned to core 1: digits with binary tensors at concurrency 32 (the batched path), and 1 (one request at a time,
where per-request costs show most). Medians of the three runs and their ratio; cache off.
"""

import argparse
import statistics
import time
from pathlib import Path

from bench import loadgen, payloads, servers
from bench.run import write_bodies

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PORT = 8195
ENTRIES = {"guarded": "app", "plain": "bench.plain_connections"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    body, header_length = write_bodies("digits")["binary"]
    rates: dict[tuple[str, int], list[float]] = {}
    for attempt in range(3):
        for protocol, entry in ENTRIES.items():
            log = OUT / f"servometer-{protocol}.log"
            with servers.servometer(payloads.MODELS, PORT, log, entry=entry) as address:
                url = f"http://{address}/v2/models/digits/infer"
                for concurrency in (32, 1):
                    print(f"[{time.strftime('%H:%M:%S')}] {protocol}, c={concurrency} ({attempt + 1}/3)", flush=True)
                    loadgen.wrk(url, body, header_length, concurrency, args.warmup)
                    measured = loadgen.wrk(url, body, header_length, concurrency, args.seconds)
                    rates.setdefault((protocol, concurrency), []).append(measured.requests_per_s)
    lines = [
        "# Connection limits: what they cost",
        "",
        f"`python -m bench.connections` ({args.seconds:g} s per run, three runs alternated; digits, binary tensors,",
        "cache off; server on core 0, wrk on core 1). Requests per second, median of three:",
        "",
        "| concurrency | guarded protocol | plain httptools | guarded / plain | runs (guarded; plain) |",
        "|---|---|---|---|---|",
    ]
    for concurrency in (32, 1):
        guarded, plain = rates[("guarded", concurrency)], rates[("plain", concurrency)]
        ratio = statistics.median(guarded) / statistics.median(plain)
        runs = f"{', '.join(f'{r:.0f}' for r in guarded)}; {', '.join(f'{r:.0f}' for r in plain)}"
        medians = f"{statistics.median(guarded):.0f} | {statistics.median(plain):.0f}"
        lines.append(f"| {concurrency} | {medians} | {ratio:.3f} | {runs} |")
    (HERE / "CONNECTIONS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
