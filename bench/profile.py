"""Where the request path's time goes, before and after: ``python -m bench.profile`` (part of ``make bench``)
writes bench/PROFILE.md.

Servometer at :data:`bench.overhead.BEFORE` (a git worktree) and at the checkout, each pinned to core 0 with the
demo's own configuration (cache and monitoring on), wrk on core 1 sending digits with binary tensors at
concurrency 64, every request new; py-spy samples the server's thread holding the GIL (``--gil``: the event
loop's work, not idle threads) for ``--seconds``. Lists the lines with the most samples of their own.
"""

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import loadgen, payloads, servers
from bench.overhead import BEFORE
from bench.run import write_bodies

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PORT = 8420
# Installed by the bench extra beside this Python, which need not be on PATH.
PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"


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
        command = ["taskset", "-c", loadgen.LOADGEN_CPU, PY_SPY, "record", "--pid", str(pid), "--gil", "--duration",
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
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as scratch:
        with servers.revision(BEFORE, Path(scratch)) as tree:
            print(f"profiling {BEFORE}", flush=True)
            found[BEFORE] = profile(tree, args.seconds, Path(scratch))
        print("profiling the checkout", flush=True)
        found["checkout"] = profile(ROOT, args.seconds, Path(scratch))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Request path profile",
        "",
        f"`python -m bench.profile` ({when}): py-spy on the server's GIL-holding thread for {args.seconds:g} s, "
        "digits with binary tensors at concurrency 64, every request new, the demo's own model.yaml (cache and "
        "monitoring on); server on core 0, wrk and py-spy on core 1. Share of samples spent in each line itself "
        "(requests/s are under the profiler, lower than without it).",
    ]
    for label, (rate, top_lines) in found.items():
        lines += ["", f"## {label}: {rate:,.0f} requests/s", "", "```", *top_lines, "```"]
    (HERE / "PROFILE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'PROFILE.md'}")


if __name__ == "__main__":
    main()
