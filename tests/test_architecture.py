"""The house rules docs/architecture.md states, checked where pytest can: no module over 400 lines, no two modules
with the same name, and the layer contract (pyproject.toml) catching an upward import."""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
MAX_LINES = 400


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(APP)): n for p in APP.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_no_two_modules_share_a_name():
    names = Counter(p.name for p in APP.rglob("*.py") if p.name != "__init__.py")
    assert [name for name, count in names.items() if count > 1] == []


def test_the_layer_contract_holds_and_fails_on_an_upward_import(tmp_path):
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is in the dev extra"
    root = APP.parent
    assert subprocess.run([lint], cwd=root, capture_output=True, text=True).returncode == 0
    # The same code with telemetry reaching up into the service: the contract must refuse it.
    copy = tmp_path / "checkout"
    shutil.copytree(APP, copy / "app")
    shutil.copy(root / "pyproject.toml", copy / "pyproject.toml")
    views = copy / "app" / "telemetry" / "views.py"
    views.write_text("import app.service  # noqa\n" + views.read_text())
    refused = subprocess.run(
        [lint], cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"}
    )
    assert refused.returncode != 0
    assert "app.telemetry.views -> app.service" in refused.stdout
