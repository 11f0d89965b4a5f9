"""The variant reports of both demo models: ``python -m bench.variants`` (part of ``make bench``) writes
bench/variants/{digits,minilm}-variants.{md,json,png}.

Each report is measured fresh (an empty report directory), on core 0, with one ONNX Runtime thread, as the
batching benchmark runs the server; the price is $0.10 per hour so cost per 1,000 inferences has a figure.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import servers

HERE = Path(__file__).resolve().parent
OUT = HERE / "variants"
PRICE_PER_HOUR = "0.10"


def main() -> None:
    with tempfile.TemporaryDirectory() as reports:
        env = {
            **os.environ,
            **servers.ONE_THREAD,
            "SERVOMETER_PRICE_PER_HOUR": PRICE_PER_HOUR,
            "SERVOMETER_REPORT_DIR": reports,
            "SERVOMETER_TORCH_THREADS": "1",
        }
        for model in ("digits", "minilm"):
            print(f"[{time.strftime('%H:%M:%S')}] measuring the variants of {model}", flush=True)
            command = [
                "taskset", "-c", servers.SERVER_CPU, sys.executable, "-m", "app", "report", model,
                "--models", str(servers.ROOT / "models"), "--output", str(OUT),
            ]  # fmt: skip
            subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
