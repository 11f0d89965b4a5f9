"""The same benchmark against two revisions of the code, alternated in one run: ``python -m bench.ab REV``.

Servometer at REV (a git worktree in a temporary folder) and at the checkout, each pinned to core 0 with wrk on
core 1 and serving this checkout's built models, digits with binary and JSON tensors at concurrency 1 and 64,
cache off, three rounds; each round starts with the other revision, so neither always runs first. Medians and
their ratio (checkout / REV)."""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import loadgen, payloads, servers
from bench.run import write_bodies

ROOT = Path(__file__).resolve().parent.parent
PORT = 8231


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("revision", help="the git revision to compare the checkout with")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    bodies = write_bodies("digits")
    rates: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch, servers.revision(args.revision, Path(scratch)) as other:
        for round_ in range(3):
            for label in (args.revision, "checkout") if round_ % 2 == 0 else ("checkout", args.revision):
                tree = other if label == args.revision else ROOT
                log = Path(scratch) / f"{label}.log"
                with servers.servometer_at(tree, payloads.MODELS, PORT, log) as address:
                    url = f"http://{address}/v2/models/digits/infer"
                    for tensors, (body, header_length) in bodies.items():
                        for concurrency in (1, 64):
                            loadgen.wrk(url, body, header_length, concurrency, 2)
                            measured = loadgen.wrk(url, body, header_length, concurrency, args.seconds)
                            if measured.errors:  # a model the revision could not load answers fast, and wrong
                                raise RuntimeError(f"{label}: {measured.errors} errors; see {log}")
                            rate = measured.requests_per_s
                            rates.setdefault((label, tensors, concurrency), []).append(rate)
                            print(f"[{time.strftime('%H:%M:%S')}] {label} {tensors} c={concurrency}: {rate:.0f}",
                                  flush=True)  # fmt: skip
    print(f"\n| tensors | concurrency | {args.revision} | checkout | checkout / {args.revision} |")
    print("|---|---:|---:|---:|---:|")
    for tensors in bodies:
        for concurrency in (1, 64):
            before = statistics.median(rates[(args.revision, tensors, concurrency)])
            after = statistics.median(rates[("checkout", tensors, concurrency)])
            print(f"| {tensors} | {concurrency} | {before:.0f} | {after:.0f} | {after / before:.3f} |")


if __name__ == "__main__":
    main()
