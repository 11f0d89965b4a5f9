"""How much memory a variant takes: measured in a fresh process, since inside a long-lived one freed memory is
reused and a variant loaded after another would read low.

``python -m app.variants.memory_probe FOLDER VARIANT`` loads the variant, runs one batch of the evaluation data at the
largest batch size, and prints the growth of its resident memory in bytes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from app.evaluation.quality import load_evaluation
from app.runtimes.base import RuntimeOptions
from app.runtimes.loader import load_variant_runtime
from app.schema.manifest import load_manifest


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), or None where /proc is not there."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def variant_memory(folder: Path, variant: str, timeout_s: float = 120) -> int | None:
    """The variant's resident-memory growth, measured by a child process; None if it cannot be measured."""
    result = subprocess.run(
        [sys.executable, "-m", "app.variants.memory_probe", str(folder), variant],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    measured: int | None = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    folder, name = Path(sys.argv[1]), sys.argv[2]
    manifest = load_manifest(folder)
    spec = next(v for v in manifest.variants if v.name == name)
    evaluation = load_evaluation(folder, manifest)
    largest = max(1, manifest.batching.max_batch_size)
    inputs = {key: array[:largest] for key, array in evaluation.inputs.items()}
    before = resident_bytes()
    runtime = load_variant_runtime(spec.runtime, folder / spec.file, RuntimeOptions(), manifest)
    runtime.infer(inputs, [tensor.name for tensor in manifest.model_outputs])
    after = resident_bytes()
    sys.stdout.write(json.dumps(None if before is None or after is None else max(0, after - before)) + "\n")


if __name__ == "__main__":
    main()
