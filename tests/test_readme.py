"""The README's promises that can drift from the code."""

from app.config import Settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting_with_its_environment_variable():
    for name in Settings.model_fields:
        assert f"`SERVOMETER_{name.upper()}`" in README, name


def test_readme_gives_exactly_the_two_setup_commands_and_ci_runs_the_test_one():
    assert "```sh\nmake serve\n```" in README
    assert "```sh\nmake test\n```" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()
