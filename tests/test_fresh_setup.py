"""The fresh-machine check that .ci/run runs (tests/fresh_setup.py): what it reads from the README, and how it
compares what the examples print with what the README prints. The check itself takes minutes (a fresh virtual
environment, the demo models built from scratch), so CI runs it once, after the suite."""

import pytest

from tests import fresh_setup
from tests.helpers import ROOT


def test_it_runs_the_readmes_serve_command_and_finds_every_example():
    assert fresh_setup.serve_command(ROOT / "README.md") == "make serve"
    text = fresh_setup.section((ROOT / "README.md").read_text(), "Sending requests")
    assert "# {" in text  # the printed answer it compares with
    assert "print(result.as_numpy" in text
    assert "pip install" in text  # what the tritonclient example needs, which make serve does not install


def test_values_written_as_dots_are_compared_by_presence_and_everything_else_exactly():
    printed = {"outputs": [{"data": [0]}], "parameters": {"variant": "fp32", "response_id": "..."}}
    fresh_setup.compare({"outputs": [{"data": [0]}], "parameters": {"variant": "fp32", "response_id": "x"}},
                        printed, "answer")  # fmt: skip
    for wrong in (
        {"outputs": [{"data": [1]}], "parameters": {"variant": "fp32", "response_id": "x"}},
        {"outputs": [{"data": [0]}], "parameters": {"variant": "fp32"}},
        {"outputs": [{"data": [0]}], "parameters": {"variant": "fp32", "response_id": ""}},
        {"outputs": [{"data": [0]}, {"data": [0]}], "parameters": {"variant": "fp32", "response_id": "x"}},
    ):
        with pytest.raises(SystemExit):
            fresh_setup.compare(wrong, printed, "answer")
