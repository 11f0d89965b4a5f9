import sys

import numpy as np
import pytest

from app.runtimes.base import RuntimeLoadError, RuntimeOptions, TensorInfo
from app.runtimes.torchscript import TorchScriptRuntime

INPUTS = [TensorInfo("image", "FP32", (None, 1, 8, 8))]
OUTPUTS = [TensorInfo(name, "FP32", ()) for name in ("logits", "probabilities", "label")]


def test_torchscript_maps_positional_outputs_to_the_manifests_names(demo_models):
    runtime = TorchScriptRuntime(demo_models / "digits" / "model.torchscript.pt", RuntimeOptions(), INPUTS, OUTPUTS)
    produced = runtime.infer({"image": np.zeros((2, 1, 8, 8), np.float32)}, ["label", "logits"])
    assert list(produced) == ["label", "logits"]
    assert produced["logits"].shape == (2, 10)


def test_without_torch_the_variant_fails_to_load_with_the_install_hint(demo_models, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees when torch is not installed
    with pytest.raises(RuntimeLoadError, match=r"pip install 'servometer\[torch\]'"):
        TorchScriptRuntime(demo_models / "digits" / "model.torchscript.pt", RuntimeOptions(), INPUTS, OUTPUTS)


def test_a_pickle_or_other_non_torchscript_file_is_refused(tmp_path):
    import pickle

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(RuntimeLoadError, match="cannot load model.pt as TorchScript"):
        TorchScriptRuntime(path, RuntimeOptions(), INPUTS, OUTPUTS)
