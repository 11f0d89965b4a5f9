import numpy as np
import pytest

from app.runtimes.base import RuntimeLoadError, RuntimeOptions
from app.runtimes.onnx import OnnxRuntime, choose_providers, conflicting_packages

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@pytest.mark.parametrize(
    ("available", "requested", "chosen"),
    [
        ([CPU], [], [CPU]),
        ([CUDA, CPU], [], [CUDA, CPU]),
        ([TRT, CUDA, CPU], [], [TRT, CUDA, CPU]),
        ([TRT, CUDA, CPU], [CUDA, CPU], [CUDA, CPU]),
        ([CPU], [CUDA, CPU], [CPU]),
    ],
)
def test_providers_prefer_tensorrt_then_cuda_and_always_fall_back_to_cpu(available, requested, chosen):
    assert choose_providers(available, requested) == chosen


def test_asking_only_for_missing_providers_is_a_load_error():
    with pytest.raises(RuntimeLoadError, match="none of the execution providers"):
        choose_providers([CPU], [CUDA])


def test_both_onnxruntime_builds_installed_is_flagged():
    assert conflicting_packages(["onnxruntime", "numpy"]) is None
    message = conflicting_packages(["onnxruntime", "onnxruntime_gpu"])
    assert message is not None
    assert "servometer[cpu] or servometer[gpu]" in message


def test_onnx_runtime_reports_the_files_signature_and_runs_on_cpu(demo_models):
    runtime = OnnxRuntime(demo_models / "digits" / "model.fp32.onnx", RuntimeOptions(onnx_intra_op_threads=1))
    assert runtime.device == "cpu"
    assert [(t.name, t.datatype) for t in runtime.inputs()] == [("image", "FP32")]
    assert runtime.inputs()[0].shape[1:] == (1, 8, 8)
    out = runtime.infer({"image": np.zeros((3, 1, 8, 8), np.float32)}, ["label"])
    assert out["label"].shape == (3,)


def test_a_file_that_is_not_onnx_is_a_load_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(RuntimeLoadError, match="onnxruntime cannot load model.onnx"):
        OnnxRuntime(bad, RuntimeOptions())
