import subprocess
import sys

from tests.helpers import MODELS


def _servometer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_models_build_reports_built_models_as_up_to_date(demo_models):
    result = _servometer("models", "build", "--models", str(MODELS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["digits: up to date", "minilm: up to date"]


def test_models_build_of_an_unknown_model_fails_with_a_message(demo_models):
    result = _servometer("models", "build", "nope", "--models", str(MODELS))
    assert result.returncode == 1
    assert "no model folders ['nope']" in result.stderr


def test_serve_help_lists_every_flag_with_its_environment_variable():
    help_text = _servometer("serve", "--help").stdout
    for flag, env in [
        ("--host", "SERVOMETER_HOST"),
        ("--port", "SERVOMETER_PORT"),
        ("--models", "SERVOMETER_MODELS"),
        ("--workers", "SERVOMETER_WORKERS"),
    ]:
        assert flag in help_text
        assert env in help_text
