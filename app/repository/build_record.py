"""What a completed model build wrote (``build.json`` in the model's folder), and whether a folder's build is
complete: the builder writes the record last, the registry serves no model whose build is incomplete."""

from pathlib import Path

from pydantic import BaseModel, ValidationError

BUILD_SCRIPT = "build.py"
BUILD_RECORD = "build.json"


class BuildRecord(BaseModel):
    """File name -> size in bytes, of every file the build wrote."""

    files: dict[str, int]


def incomplete_build(folder: Path, check_sizes: bool = False) -> str:
    """Why a folder with a build script is not completely built; empty when it is (or has no script).

    ``check_sizes`` also counts a file whose size changed since the build (truncated, or replaced by hand): the
    builder rebuilds it. The registry leaves that to loading, where a broken file fails only its own variant.
    """
    if not (folder / BUILD_SCRIPT).is_file():
        return ""
    try:
        record = BuildRecord.model_validate_json((folder / BUILD_RECORD).read_bytes())
    except FileNotFoundError:
        return f"its build has not completed (no {BUILD_RECORD})"
    except (OSError, ValidationError) as exc:
        return f"its {BUILD_RECORD} is unreadable: {exc}"
    gone = sorted(name for name in record.files if not (folder / name).is_file())
    if gone:
        return f"files of its build are gone: {gone}"
    if check_sizes:
        changed = sorted(name for name, size in record.files.items() if (folder / name).stat().st_size != size)
        if changed:
            return f"files of its build changed size since: {changed}"
    return ""
