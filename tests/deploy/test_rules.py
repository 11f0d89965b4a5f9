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
ALERTS = RULES / "servometer-alerts.yml"
RUNBOOKS_URL = "https://github.com/servometer/servometer/blob/main/docs/runbooks.md"


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


def test_every_alert_fires_and_stays_quiet_where_its_unit_tests_expect():
    result = _promtool("test", "rules", "alerts_test.yml", cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases: dict[str, list[bool]] = {}
    for test in yaml.safe_load((HERE / "alerts_test.yml").read_text())["tests"]:
        for check in test["alert_rule_test"]:
            cases.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
    for rule in alert_rules():
        name = rule["alert"]
        if name == "ServometerWatchdog":  # fires by design, whatever the input
            assert cases.get(name) == [True]
            continue
        assert True in cases.get(name, []), f"{name} has no unit test where it fires"
        assert False in cases.get(name, []), f"{name} has no unit test where it stays quiet"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_that_exists():
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = re.findall(r"^#+ (.+)$", runbooks, re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9-]", "", heading.lower().replace(" ", "-")) for heading in headings}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOKS_URL + "#"), url
        assert url.split("#")[1] in anchors, f"{rule['alert']}: docs/runbooks.md has no section #{url.split('#')[1]}"


_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed_names(exposition: str) -> set[str]:
    """Every series name /metrics declares, including families with no sample yet (GPU series without NVML)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (servometer_\w+) (\w+)$", exposition, re.MULTILINE):
        names.update(name + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names


def test_every_metric_the_rules_read_is_one_servometer_exports(demo_models):
    with started_client(demo_models) as client:
        client.post(
            "/v2/models/digits/infer",
            json={"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [0] * 64}]},
        )
        exposed = exposed_names(client.get("/metrics").text)
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in re.findall(r"(?<![:\w])servometer_\w+", rule["expr"]):
                    assert name in exposed, f"{path.name}: {rule.get('record') or rule.get('alert')} reads {name}"
