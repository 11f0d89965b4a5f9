"""The Dockerfile and docker-compose.yml: no Docker engine runs here, so they are linted (hadolint) and validated
against the Compose specification's JSON schema, and what they refer to is checked to exist."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is missing: `make test` installs it (the dev extra)"
    return path


def test_hadolint_passes_the_dockerfile():
    result = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_runs_as_a_non_root_user_and_checks_readiness():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1] not in {"root", "0"}
    healthcheck = " ".join(lines[lines.index(next(line for line in lines if line.startswith("HEALTHCHECK"))) :][:2])
    assert "/v2/health/ready" in healthcheck


def test_the_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_rejects_what_the_schema_forbids(tmp_path):
    """The schema check is a real check: a misspelt key fails it."""
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["servometer"]["healthcheck"]["intervall"] = "10s"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0


def test_the_stack_has_every_service_with_a_healthcheck_and_mounts_files_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"servometer", "redis", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
    assert "/v2/health/ready" in " ".join(services["servometer"]["healthcheck"]["test"])
    assert services["servometer"]["environment"]["SERVOMETER_REDIS_URL"].startswith("redis://redis:")
    # Prometheus scrapes and alerts by the service names compose gives them.
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["servometer:8000"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
