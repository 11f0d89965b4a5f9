"""The chart library the page loads is the pinned release, unmodified, with its licence beside it."""

import hashlib
import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "app" / "live" / "static"
RECORD = json.loads((STATIC / "vendor" / "vendored.json").read_text())


def test_every_vendored_file_is_the_recorded_release_byte_for_byte():
    for package in RECORD["packages"]:
        folder = STATIC / "vendor" / package["folder"]
        assert sorted(path.name for path in folder.iterdir()) == sorted(package["sha256"])
        for name, digest in package["sha256"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        assert package["version"] in package["folder"]
        assert package["version"] in RECORD["command"]


def test_the_vendored_library_carries_its_licence_and_the_page_loads_that_version():
    for package in RECORD["packages"]:
        licence = (STATIC / "vendor" / package["folder"] / "LICENSE").read_text()
        assert package["license"] == "MIT"
        assert "Permission is hereby granted, free of charge" in licence
        page = (STATIC / "index.html").read_text()
        loaded = set(re.findall(r"ui/static/vendor/([^/]+)/", page))
        assert loaded == {package["folder"]}
        banner = (STATIC / "vendor" / package["folder"] / "uPlot.iife.min.js").read_text()[:100]
        assert f"v{package['version']}" in banner
