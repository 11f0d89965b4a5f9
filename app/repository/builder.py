"""Run each model's ``build.py`` to produce the files its ``model.yaml`` names.

A model's build script lives beside its manifest, so a user copies one folder to add a model of their own.
Scripts run in a child process: their heavy imports (torch, transformers) never enter the server.

A build is all or nothing: its record (``build.json``) is removed before the script starts and written last,
listing every file the build wrote, once the script has succeeded and every file the manifest needs (variants,
evaluation and calibration data, reference statistics for monitoring) is on disk. A folder with a build script and
no complete record (or with a recorded file gone or of another size) is built again by the next ``serve``, and
the registry does not serve it meanwhile.
"""

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.repository.build_record import BUILD_RECORD, BUILD_SCRIPT, BuildRecord, incomplete_build
from app.schema.manifest import MANIFEST_FILE, REFERENCE_FILE, ManifestError, ModelManifest, load_manifest


@dataclass(frozen=True)
class BuildResult:
    model: str
    built: bool
    detail: str


def needed_files(manifest: ModelManifest) -> list[str]:
    """Every file serving the model reads: its variants, its steps' tokenizers, evaluation and calibration data,
    reference statistics."""
    files = [variant.file for variant in manifest.variants]
    files += [step.file for step in manifest.steps.before if step.kind == "tokenize"]
    if manifest.evaluation is not None:
        files.append(manifest.evaluation.data)
        if manifest.evaluation.calibration is not None:
            files.append(manifest.evaluation.calibration)
    if manifest.monitoring is not None:
        files.append(REFERENCE_FILE)
    return files


def missing_files(folder: Path) -> list[str]:
    """The files the model's manifest needs that are not on disk."""
    return [name for name in needed_files(load_manifest(folder)) if not (folder / name).is_file()]


def build_models(root: Path, names: list[str] | None = None, force: bool = False) -> list[BuildResult]:
    """Build the named models (all with a build script when None) that are not completely built, or all if
    ``force``."""
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
        why = (
            "forced"
            if force
            else incomplete_build(folder, check_sizes=True) or (f"missing {missing}" if missing else "")
        )
        if not why:
            results.append(BuildResult(folder.name, False, "up to date"))
            continue
        _build(folder, why)
        results.append(BuildResult(folder.name, True, "built"))
    return results


def _build(folder: Path, why: str) -> None:
    script = folder / BUILD_SCRIPT
    print(f"==> building model '{folder.name}' ({why}): {script}", flush=True)  # noqa: T201 - CLI progress
    (folder / BUILD_RECORD).unlink(missing_ok=True)
    before = _files(folder)
    completed = subprocess.run([sys.executable, str(script.resolve())], cwd=folder, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {completed.returncode}")
    still_missing = missing_files(folder)
    if still_missing:
        raise RuntimeError(f"{script} finished but did not produce {still_missing}")
    after = _files(folder)
    written = {name: size for name, (size, _) in after.items() if before.get(name) != after[name]}
    for name in needed_files(load_manifest(folder)):
        written.setdefault(name, after[name][0])
    _write_atomically(folder / BUILD_RECORD, BuildRecord(files=dict(sorted(written.items()))).model_dump_json(indent=1))


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """File name -> (size, modification time) of the folder's files, but the manifest and the build script."""
    return {
        path.name: (stat.st_size, stat.st_mtime_ns)
        for path in folder.iterdir()
        if path.is_file() and path.name not in {MANIFEST_FILE, BUILD_SCRIPT, BUILD_RECORD}
        for stat in (path.stat(),)
    }


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as staged:
        staged.write(text + "\n")
    os.chmod(staged.name, 0o644)
    Path(staged.name).replace(path)
