"""Run each model's ``build.py`` to produce the files its ``model.yaml`` names.

A model's build script lives beside its manifest, so a user copies one folder to add a model of their own.
Scripts run in a child process: their heavy imports (torch, transformers) never enter the server.
"""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.repository.manifest import MANIFEST_FILE, ManifestError, load_manifest

BUILD_SCRIPT = "build.py"


@dataclass(frozen=True)
class BuildResult:
    model: str
    built: bool
    detail: str


def missing_files(folder: Path) -> list[str]:
    """The variant files a model's manifest names that are not on disk."""
    manifest = load_manifest(folder)
    return [variant.file for variant in manifest.variants if not (folder / variant.file).is_file()]


def build_models(root: Path, names: list[str] | None = None, force: bool = False) -> list[BuildResult]:
    """Build the named models (all with a build script when None) whose files are missing, or all if ``force``."""
    folders = sorted(path.parent for path in root.glob(f"*/{MANIFEST_FILE}"))
    if names:
        unknown = sorted(set(names) - {folder.name for folder in folders})
        if unknown:
            raise ValueError(f"no model folders {unknown} in {root}")
        folders = [folder for folder in folders if folder.name in names]
    results = []
    for folder in folders:
        script = folder / BUILD_SCRIPT
        try:
            missing = missing_files(folder)
        except ManifestError as exc:
            results.append(BuildResult(folder.name, False, f"skipped: {exc}"))
            continue
        if not script.is_file():
            results.append(BuildResult(folder.name, False, f"no {BUILD_SCRIPT}; missing files: {missing or 'none'}"))
            continue
        if not missing and not force:
            results.append(BuildResult(folder.name, False, "up to date"))
            continue
        print(f"==> building model '{folder.name}' ({script})", flush=True)  # noqa: T201 - progress for the CLI
        completed = subprocess.run([sys.executable, str(script.resolve())], cwd=folder, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"{script} failed with exit code {completed.returncode}")
        still_missing = missing_files(folder)
        if still_missing:
            raise RuntimeError(f"{script} finished but did not produce {still_missing}")
        results.append(BuildResult(folder.name, True, "built"))
    return results
