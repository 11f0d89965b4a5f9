import os
import subprocess
import sys

import httpx

from tests.helpers import MODELS, copy_model, free_port, wait_ready


def _servometer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_models_build_reports_built_models_as_up_to_date(demo_models):
    result = _servometer("models", "build", "--models", str(MODELS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["digits: up to date", "minilm: up to date", "minilm-ids: up to date"]


def test_models_build_of_an_unknown_model_fails_with_a_message(demo_models):
    result = _servometer("models", "build", "nope", "--models", str(MODELS))
    assert result.returncode == 1
    assert "no model folders ['nope']" in result.stderr


def test_serve_help_lists_every_flag_with_its_environment_variable():
    help_text = _servometer("serve", "--help").stdout
    for flag, env in [
        ("--host", "SERVOMETER_HOST"),
        ("--port", "SERVOMETER_PORT"),
        ("--models", "SERVOMETER_MODELS"),
        ("--workers", "SERVOMETER_WORKERS"),
    ]:
        assert flag in help_text
        assert env in help_text


def test_serve_builds_missing_model_files_before_serving(demo_models, tmp_path):
    folder = tmp_path / "copied"
    folder.mkdir()
    manifest = (MODELS / "digits" / "model.yaml").read_text().replace("name: digits", "name: copied")
    (folder / "model.yaml").write_text(manifest.split("  - name: int8")[0])
    source = MODELS / "digits" / "model.fp32.onnx"
    (folder / "build.py").write_text(f"import shutil\nshutil.copy({str(source)!r}, 'model.fp32.onnx')\n")
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), "--models", str(tmp_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"127.0.0.1:{port}", process, log)
        assert (folder / "model.fp32.onnx").is_file()
        assert httpx.get(f"http://127.0.0.1:{port}/v2/models/copied/ready").status_code == 200
        assert "building model 'copied'" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_optimize_reports_each_kind_and_lists_the_kept_ones(demo_models, tmp_path):
    copy_model("digits", tmp_path)
    result = _servometer("optimize", "digits", "--models", str(tmp_path), "--kinds", "fp32-opt,int8-static")
    assert result.returncode == 0, result.stderr
    assert "[1/2] fp32-opt -> variant 'fp32-opt'" in result.stderr
    assert "digits: kept fp32-opt, int8-static; model.yaml updated" in result.stderr
    assert "name: int8-static" in (tmp_path / "digits" / "model.yaml").read_text()
    wrong = _servometer("optimize", "digits", "--models", str(tmp_path), "--kinds", "int2")
    assert wrong.returncode == 1
    assert "unknown kinds ['int2']" in wrong.stderr


def test_report_prints_the_table_and_writes_the_plot(demo_models, tmp_path):
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "app", "report", "digits", "--models", str(MODELS), "--output", str(output)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "SERVOMETER_REPORT_DIR": str(tmp_path / "reports")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| fp32 (reference) | fp32 | 0.9806 | 0.9807 |" in result.stdout
    assert (output / "digits-variants.png").read_bytes().startswith(b"\x89PNG")
    assert (output / "digits-variants.json").is_file()
