"""Schemathesis against the OpenAPI document of a real server: generated requests for every documented operation
(management API on, so it is covered too), a bounded number per operation, and not one 5xx answer."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import server_process

ADMIN = "management-key-0123456789abcdef"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_no_generated_request_gets_a_server_error(demo_models, tmp_path):
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is missing: `make test` installs it (the dev extra)"
    env = {"SERVOMETER_MANAGEMENT_API_KEY": ADMIN}
    with server_process(demo_models, env=env, log=tmp_path / "server.log") as (_, address):
        result = subprocess.run(
            [
                binary, "--no-color", "--config-file", str(CONFIG), "run", f"http://{address}/openapi.json",
                "--checks", "not_a_server_error", "--max-examples", "20", "--seed", "1", "--workers", "1",
                "--phases", "coverage,fuzzing", "--request-timeout", "30",
                # unloading the served model would leave the rest of the run nothing to reach
                "--exclude-path-regex", "unload", "--header", f"Authorization: Bearer {ADMIN}",
            ],
            # its cache of failures goes into the working directory: the test's, never the checkout
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert "failed" not in result.stdout.split("SUMMARY")[-1]
