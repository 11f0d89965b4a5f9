"""The ONNX Runtime session every reference in bench/ calls: CPU, a fixed number of threads (one by default,
the server's one core), operators in sequence."""

from pathlib import Path
from typing import Any

import onnxruntime as ort


def cpu_session(model_file: str | Path, threads: int = 1) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
