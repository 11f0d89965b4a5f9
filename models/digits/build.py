"""Build the `digits` demo model: a small CNN trained with torch on scikit-learn's bundled 8x8 digits.

Produces, beside this file:
  model.fp32.onnx        ONNX, float32
  model.torchscript.pt   TorchScript (torch.jit.trace)
  heldout.npz            the held-out labeled split (images, labels) the build never trained on
  calibration.npz        the training images, for static quantization
and, through `servometer optimize` (app/variants/optimize.py), each checked against fp32 on the held-out split:
  model.int8.onnx        int8 static (QDQ, per-channel weights): activation scales calibrated once on the
                         training images, so a sample's answer does not depend on what it is batched with
  model.fp32-opt.onnx    ONNX Runtime's extended graph optimizations, saved
  model.int8-dynamic.onnx  int8 dynamic: activation scales computed per batch (answers move slightly with
                         batch companions)
  model.fp16.onnx        float16 inside, where the runtime can run it (left out otherwise)

Deterministic: fixed seeds, one thread, deterministic algorithms. No download: the data ships inside
scikit-learn. Copy this file as a starting point for a model of your own.
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from app.variants.optimize import Kind, optimize

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 40


class DigitsNet(nn.Module):
    """Raw pixel values (0..16) in; logits, probabilities and the predicted label out."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.features(image / 16.0)
        return logits, torch.softmax(logits, dim=1), torch.argmax(logits, dim=1)


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = digits.images.astype(np.float32).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=0.2, random_state=SEED, stratify=labels
    )
    return train_x, test_x, train_y, test_y


def train(images: np.ndarray, labels: np.ndarray) -> DigitsNet:
    torch.manual_seed(SEED)
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    order = torch.Generator().manual_seed(SEED)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for batch in torch.randperm(len(x), generator=order).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch])[0], y[batch])
            loss.backward()
            optimizer.step()
        if epoch % 10 == 0:
            print(f"  epoch {epoch}/{EPOCHS}  loss {loss.item():.4f}", flush=True)
    return model.eval()


def main() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print("[1/4] training on scikit-learn digits", flush=True)
    train_x, test_x, train_y, test_y = split()
    np.savez(HERE / "heldout.npz", images=test_x, labels=test_y)
    np.savez(HERE / "calibration.npz", images=train_x)
    model = train(train_x, train_y)

    print("[2/4] exporting ONNX fp32", flush=True)
    example = (torch.from_numpy(test_x[:2]),)
    torch.onnx.export(
        model,
        example,
        HERE / "model.fp32.onnx",
        dynamo=True,
        external_data=False,
        input_names=["image"],
        output_names=["logits", "probabilities", "label"],
        dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
        verbose=False,
    )

    print("[3/4] tracing TorchScript", flush=True)
    torch.jit.trace(model, example).save(str(HERE / "model.torchscript.pt"))

    print("[4/4] optimized variants (servometer optimize), each checked against fp32 on the held-out split", flush=True)
    kinds: dict[Kind, str] = {
        "int8-static": "int8", "fp32-opt": "fp32-opt", "int8-dynamic": "int8-dynamic", "fp16": "fp16",
    }  # fmt: skip
    for outcome in optimize(HERE, kinds, progress=lambda line: print("  " + line, flush=True)):
        if outcome.quality is not None:
            print(f"  {outcome.name}: held-out accuracy {outcome.quality.accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
