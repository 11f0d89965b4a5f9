"""Where the request path's time goes: ``python -m bench.profile [--revision REV]``.

Servometer (the checkout, or REV from a git worktree) pinned to core 0 with the demo's own configuration
(cache and monitoring on), wrk on core 1 sending digits with binary tensors at concurrency 64, every request
new; py-spy samples the server's thread holding the GIL (``--gil``: the event loop's work, not idle threads) for
``--seconds``. Prints the functions with the most samples of their own, and their callers' share.
"""

import argparse
import collections
import subprocess
import tempfile
import threading
from pathlib import Path

from bench import loadgen, payloads, servers
from bench.run import write_bodies

ROOT = Path(__file__).resolve().parent.parent
PORT = 8420


def top(folded: Path, count: int) -> list[str]:
    """The ``count`` frames with the most samples of their own (py-spy's raw, folded format)."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        own[stack.split(";")[-1]] += int(samples)
    return [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count)]


def profile(tree: Path, seconds: float, out: Path) -> tuple[float, list[str]]:
    body, header_length = write_bodies("digits")["binary"]
    vary = loadgen.varying(body.read_bytes(), header_length)
    folded = out / "profile.folded"
    with servers.servometer_at(
        tree, payloads.MODELS, PORT, out / "profile.log", {"SERVOMETER_CACHE_BACKEND": "memory"}
    ) as (address):
        url = f"http://{address}/v2/models/digits/infer"
        loadgen.wrk(url, body, header_length, 64, 2, vary)
        pid = _server_pid(PORT)
        result: list[loadgen.Measurement] = []
        load = threading.Thread(
            target=lambda: result.append(loadgen.wrk(url, body, header_length, 64, seconds + 2, vary))
        )
        load.start()
        command = ["taskset", "-c", loadgen.LOADGEN_CPU, "py-spy", "record", "--pid", str(pid), "--gil", "--duration",
                   str(int(seconds)), "--rate", "200", "--format", "raw", "--output", str(folded)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        load.join()
    return result[0].requests_per_s, top(folded, 25)


def _server_pid(port: int) -> int:
    """The process listening on ``port`` (the server, not the taskset or env wrapper that started it)."""
    output = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(output.split("pid=")[1].split(",")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revision", help="profile this git revision instead of the checkout")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.revision:
            with servers.revision(args.revision, Path(scratch)) as tree:
                rate, lines = profile(tree, args.seconds, Path(scratch))
        else:
            rate, lines = profile(ROOT, args.seconds, Path(scratch))
    print(f"{args.revision or 'checkout'}: {rate:,.0f} requests/s under the profiler; own samples:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
