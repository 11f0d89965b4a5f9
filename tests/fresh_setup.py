"""The README's serve command on a fresh machine, as a new user runs it. ``.ci/run`` runs this after ``make test``:

    python3 tests/fresh_setup.py [--keep]

1. copies the checkout's files (tracked, and untracked ones git does not ignore: nothing built, no .venv) into a
   temporary folder, as a fresh clone would have them;
2. runs the README's serve command there, ``make serve``, with no SERVOMETER_* settings but the port: a fresh
   virtual environment with only what that command installs, the demo models built from scratch;
3. waits until the gateway is ready, then runs the README's examples from "Sending requests" and compares what
   they print with what the README prints (values random by design, written ``"..."`` there, are compared by
   presence); the tritonclient example after the install command the README gives for it; then opens the live
   page the README points to (``/``, its script and chart library) and waits until it shows the examples' traffic;
4. stops the gateway by its PID (its process group) and removes the folder (unless ``--keep``).

Standard library only: it must not lean on the packages of the environment it is run from.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README_ADDRESS = "127.0.0.1:8000"
README_GRPC_ADDRESS = "127.0.0.1:8001"
READY_WITHIN_S = 30 * 60  # installing torch and the rest, then training and exporting the demo models
EXAMPLE_TIMEOUT_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (for a look after a failure)")
    args = parser.parse_args()
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="servometer-fresh-"))
    try:
        clone = copy_checkout(folder / "servometer")
        check(clone, free_port(), folder / "serve.log")
    finally:
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    say(f"fresh set-up checked in {time.monotonic() - started:.0f} s")


def say(line: str) -> None:
    print(f"[fresh set-up] {line}", flush=True)  # noqa: T201 - progress of a long command


def copy_checkout(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    files = [name for name in listed if name and (ROOT / name).is_file()]
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    say(f"copied {len(files)} files of the checkout into {target}")
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check(clone: Path, port: int, log_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SERVOMETER_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env["SERVOMETER_PORT"] = str(port)
    env["SERVOMETER_GRPC_PORT"] = str(free_port())
    serve = serve_command(ROOT / "README.md")
    say(f"running the README's serve command `{serve}` (port {port}); its output: {log_path}")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", serve], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(port, process, log_path)
        only_serving_packages(clone)
        run_examples(clone, port, env)
        see_live_page(port)
    except BaseException:
        say("the serve command's output ends with:\n" + "\n".join(log_path.read_text().splitlines()[-60:]))
        raise
    finally:
        stop(process)


def serve_command(readme: Path) -> str:
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", section(readme.read_text(), "Set-up"), re.DOTALL)
    return blocks[0].strip()


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def wait_ready(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    started = time.monotonic()
    reported = 0.0
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the serve command exited with {process.returncode} before the gateway was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as response:
                if response.status == 200:
                    say(f"ready after {time.monotonic() - started:.0f} s")
                    return
        except (urllib.error.URLError, OSError):
            pass
        waited = time.monotonic() - started
        if waited > READY_WITHIN_S:
            raise SystemExit(f"not ready after {READY_WITHIN_S} s")
        if waited - reported >= 30:
            reported = waited
            lines = log_path.read_text(errors="replace").splitlines()
            say(f"waiting for readiness ({waited:.0f} s): {lines[-1][:150] if lines else 'no output yet'}")
        time.sleep(1)


def only_serving_packages(clone: Path) -> None:
    """The fresh environment must not hold what only ``make test`` installs, or this check would prove nothing."""
    probe = subprocess.run([str(clone / ".venv/bin/python"), "-c", "import pytest"], capture_output=True, check=False)
    if probe.returncode == 0:
        raise SystemExit("the serve command's environment has pytest: it is not the fresh environment it should be")


def run_examples(clone: Path, port: int, env: dict[str, str]) -> None:
    text = section((ROOT / "README.md").read_text(), "Sending requests")
    blocks = re.findall(r"```(sh|python)\n(.*?)```", text, re.DOTALL)
    ran = 0
    for language, block in blocks:
        block = block.replace(README_ADDRESS, f"127.0.0.1:{port}")
        block = block.replace(README_GRPC_ADDRESS, f"127.0.0.1:{env['SERVOMETER_GRPC_PORT']}")
        if language == "python":
            expected = re.findall(r"print\(.*\)\s+# (.+)$", block, re.MULTILINE)
            output = run([str(clone / ".venv/bin/python"), "-c", block], clone, env)
            compare_lines(output, expected, "the tritonclient example")
        elif "pip install" in block:
            run(["bash", "-c", block], clone, env)
        else:
            command = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
            printed = [line[2:] for line in block.splitlines() if line.startswith("# {")]
            output = run(["bash", "-c", command], clone, env)
            answer = json.loads(output)
            if printed:
                compare(answer, json.loads(printed[0]), "answer")
            elif "outputs" not in answer:
                raise SystemExit(f"a README example got no outputs: {output[:500]}")
        ran += 1
    if ran < 4:
        raise SystemExit(f"found only {ran} examples under 'Sending requests'")
    say(f"the README's {ran} examples answered as printed")


def see_live_page(port: int) -> None:
    """What a newcomer sees at http://127.0.0.1:8000/ after the examples: the page, its files, and their traffic."""
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/", timeout=10) as response:
        page = response.read().decode()
        if not response.headers["content-type"].startswith("text/html") or "Servometer" not in page:
            raise SystemExit("the live page at / is not the page the README promises")
    for asset in re.findall(r'(?:src|href)="(ui/static/[^"]+)"', page):
        with urllib.request.urlopen(f"{base}/{asset}", timeout=10) as response:
            response.read()
    deadline = time.monotonic() + 30
    while True:  # the page samples once a second
        with urllib.request.urlopen(f"{base}/ui/api/overview", timeout=10) as response:
            overview = json.load(response)
        digits = next(model for model in overview["models"] if model["name"] == "digits")
        served = sum(variant["totals"]["requests"]["success"] for variant in digits["variants"])
        if served > 0:
            say(f"the live page shows the examples' traffic ({served:.0f} digits requests)")
            return
        if time.monotonic() > deadline:
            raise SystemExit("the live page did not show the examples' digits requests within 30 s")
        time.sleep(0.5)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    env = {**env, "PATH": f"{cwd / '.venv/bin'}{os.pathsep}{env.get('PATH', '')}"}
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"{command[-1][:300]}\nexited with {completed.returncode}:\n{completed.stderr[-3000:]}")
    return completed.stdout


def compare(got: Any, want: Any, where: str) -> None:
    """Equal, but for values the README writes as "...": those need only be there."""
    if want == "...":
        if got in (None, ""):
            raise SystemExit(f"{where}: expected a value, got {got!r}")
    elif isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            raise SystemExit(f"{where}: expected the fields {sorted(want)}, got {got!r}")
        for key, value in want.items():
            compare(got[key], value, f"{where}.{key}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise SystemExit(f"{where}: expected {want!r}, got {got!r}")
        for index, (have, value) in enumerate(zip(got, want, strict=True)):
            compare(have, value, f"{where}[{index}]")
    elif got != want:
        raise SystemExit(f"{where}: expected {want!r}, got {got!r}")


def compare_lines(output: str, expected: list[str], what: str) -> None:
    lines = output.strip().splitlines()
    if lines != expected:
        raise SystemExit(f"{what} printed {lines}, the README says {expected}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the serve command's process group (make, the gateway and its workers), by the PID we started."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    say(f"stopped the gateway (exit code {process.returncode})")


if __name__ == "__main__":
    main()
