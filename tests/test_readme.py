"""The README's promises that can drift from the code."""

import re

from app.config import Settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting_with_its_environment_variable():
    for name in Settings.model_fields:
        assert f"`SERVOMETER_{name.upper()}`" in README, name


def test_readme_gives_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    assert "```sh\nmake serve\n```" in README
    assert "```sh\nmake test\n```" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci
    assert "\npython3 tests/fresh_setup.py\n" in ci  # the serve command, as a new user runs it


def test_every_test_the_threat_model_points_to_exists():
    text = (ROOT / "docs" / "threat-model.md").read_text()
    pointers = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(pointers) > 20
    for path, name in pointers:
        source = (ROOT / path).read_text()
        assert not name or f"def {name}(" in source, f"{path}::{name} is gone"
