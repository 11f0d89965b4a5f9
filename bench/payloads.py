"""The request bodies every benchmark sends: one sample per request, as JSON or with binary tensors."""

from pathlib import Path

import numpy as np
import orjson

MODELS = Path(__file__).resolve().parent.parent / "models"
BENCH_MODELS = Path(__file__).resolve().parent / "models"
"""Models built for the benchmark only (bench/models/*/build.py), never served by the demo."""
MINILM_TOKENS = 32
"""MiniLM requests carry one sentence padded to 32 tokens, so all of them can share a batch."""


def repository(model: str) -> Path:
    """The model repository holding ``model``: the demo's, or the benchmark's own."""
    return MODELS if (MODELS / model / "model.yaml").is_file() else BENCH_MODELS


def sample_inputs(model: str) -> dict[str, np.ndarray]:
    """One real sample of the model's held-out data, with a batch dimension of 1."""
    held = np.load(repository(model) / model / "heldout.npz")
    if model == "digits":
        return {"image": held["images"][:1]}
    if model == "mlp":
        return {"pixels": held["pixels"][:1]}
    ids = np.zeros((1, MINILM_TOKENS), np.int64)
    mask = np.zeros((1, MINILM_TOKENS), np.int64)
    length = min(MINILM_TOKENS, held["input_ids"].shape[1])
    ids[0, :length] = held["input_ids"][0, :length]
    mask[0, :length] = held["attention_mask"][0, :length]
    return {"input_ids": ids, "attention_mask": mask}


def _datatype(array: np.ndarray) -> str:
    return "FP32" if array.dtype == np.float32 else "INT64"


def json_body(inputs: dict[str, np.ndarray]) -> bytes:
    tensors = [
        {"name": name, "datatype": _datatype(array), "shape": list(array.shape), "data": array.reshape(-1).tolist()}
        for name, array in inputs.items()
    ]
    return orjson.dumps({"inputs": tensors})


def binary_body(inputs: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """The binary tensor extension, as tritonclient sends it: outputs asked for in binary too."""
    tensors = [
        {
            "name": name,
            "datatype": _datatype(array),
            "shape": list(array.shape),
            "parameters": {"binary_data_size": array.nbytes},
        }
        for name, array in inputs.items()
    ]
    header = orjson.dumps({"inputs": tensors, "parameters": {"binary_data_output": True}})
    return header + b"".join(array.tobytes() for array in inputs.values()), len(header)
