"""The variant reports of both demo models: ``python -m bench.variants`` (part of ``make bench``) writes
bench/variants/{digits,minilm}-variants.{md,json,png}, and bench/variants/minilm-int8-recipes.md: every static
INT8 recipe ``servometer optimize`` tries for the transformer, with its figures and the one it keeps.

Each report is measured fresh (an empty report directory), on core 0, with one ONNX Runtime thread, as the
batching benchmark runs the server; the price is $0.10 per hour so cost per 1,000 inferences has a figure.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from app.evaluation.quality import EVALUATION_BATCH, load_evaluation
from app.runtimes.base import RuntimeOptions
from app.schema.manifest import load_manifest
from app.variants.encoder_int8 import timing_batches, variant_samples_per_second
from app.variants.optimize import optimize
from bench import servers

HERE = Path(__file__).resolve().parent
OUT = HERE / "variants"
PRICE_PER_HOUR = "0.10"


ONE_THREAD = RuntimeOptions(onnx_intra_op_threads=1, onnx_inter_op_threads=1)


def recipes() -> None:
    """minilm's static INT8 recipes, as ``servometer optimize`` tries them, on a copy holding only the fp32 variant;
    fp32 timed the same way (one thread, the evaluation texts in length-sorted batches of 32)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "minilm"
        source = servers.ROOT / "models" / "minilm"
        shutil.copytree(source, folder, ignore=lambda _, names: [n for n in names if n.endswith(".onnx")])
        shutil.copy2(source / "model.fp32.onnx", folder)
        manifest = yaml.safe_load((folder / "model.yaml").read_text())
        manifest["variants"] = [v for v in manifest["variants"] if v["name"] == "fp32"]
        (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        (outcome,) = optimize(folder, {"int8-static": "int8"}, options=ONE_THREAD, progress=print)
        loaded = load_manifest(folder)
        evaluation = load_evaluation(folder, loaded)
        fp32 = variant_samples_per_second(
            folder / "model.fp32.onnx", loaded, ONE_THREAD, timing_batches(evaluation.inputs, EVALUATION_BATCH)
        )
    lines = [
        "# minilm: static INT8 recipes",
        "",
        f"`python -m bench.variants` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): what `servometer "
        "optimize` tries for a transformer encoder's `int8-static` (app/variants/encoder_int8.py), on core 0 with one "
        f"ONNX Runtime thread. Quality: cosine to fp32 on the {evaluation.samples} evaluation texts; speed: those "
        f"texts in length-sorted batches of {EVALUATION_BATCH}, each cut to its longest. fp32: {fp32:.1f} samples/s.",
        "",
        "| recipe | cosine mean | cosine min | samples/s | vs fp32 | passes the check | kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for trial in outcome.trials:
        if trial.samples_per_s is None:
            lines.append(f"| {trial.recipe} | – | – | – | – | no: {trial.note} | |")
            continue
        lines.append(
            f"| {trial.recipe} | {trial.cosine_mean:.4f} | {trial.cosine_min:.4f} | {trial.samples_per_s:.1f} | "
            f"{trial.samples_per_s / fp32:.2f}x | {'yes' if trial.passed else 'no'} | "
            f"{'yes' if trial.kept else ''} |"
        )
    (OUT / "minilm-int8-recipes.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", action="store_true", help="only the int8 recipe table (run pinned by main)")
    if parser.parse_args().recipes:
        recipes()
        return
    print(f"[{time.strftime('%H:%M:%S')}] minilm's int8 recipes", flush=True)
    subprocess.run(["taskset", "-c", servers.SERVER_CPU, sys.executable, "-m", "bench.variants", "--recipes"],
                   check=True)  # fmt: skip
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
