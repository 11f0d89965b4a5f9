"""The shipped Prometheus rules: valid for promtool, right by promtool's unit tests, and about real metrics."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.api.conftest import started_client
from tests.helpers import ROOT

RULES = ROOT / "deploy" / "prometheus" / "rules"
HERE = Path(__file__).resolve().parent


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert shutil.which("promtool"), "promtool is missing: `make test` installs Debian's prometheus package"
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_promtool_accepts_every_rules_file():
    for path in sorted(RULES.glob("*.yml")):
        result = _promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_compute_what_their_unit_tests_expect():
    result = _promtool("test", "rules", "recording_test.yml", cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_rules_read_is_one_servometer_exports(demo_models):
    with started_client(demo_models) as client:
        client.post(
            "/v2/models/digits/infer",
            json={"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 64}]},
        )
        exposed = set(re.findall(r"^(servometer_\w+?)(?:\{| )", client.get("/metrics").text, re.MULTILINE))
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in re.findall(r"\bservometer_\w+", rule["expr"]):
                    assert name in exposed, f"{path.name}: {rule.get('record') or rule.get('alert')} reads {name}"
