"""Build `minilm-ids`: the same model files as ../minilm, hard-linked (copied where links cannot be made).

Both models serve the same weights, so one export serves both: minilm is built first if it is not built yet.
"""

import os
import shutil
from pathlib import Path

from app.repository.builder import build_models, needed_files
from app.schema.manifest import load_manifest

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "minilm"


def main() -> None:
    print("[1/2] building ../minilm if it is not built", flush=True)
    for result in build_models(HERE.parent, [SOURCE.name]):
        if not result.built and "up to date" not in result.detail:
            raise SystemExit(f"minilm: {result.detail}")
    files = needed_files(load_manifest(HERE))
    print(f"[2/2] linking {len(files)} files from ../minilm", flush=True)
    for name in files:
        target = HERE / name
        target.unlink(missing_ok=True)
        try:
            os.link(SOURCE / name, target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(SOURCE / name, target)


if __name__ == "__main__":
    main()
