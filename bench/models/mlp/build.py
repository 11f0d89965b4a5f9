"""Build the benchmark's MLP: 784-512-512-10, trained with torch on scikit-learn's bundled 8x8 digits upsampled
to 28x28 (784 pixels, MNIST's size). Writes model.fp32.onnx and heldout.npz beside this file. No download."""

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 5


def pixels() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32)).unsqueeze(1) / 16.0
    large = nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    return large.reshape(len(large), 784).numpy(), digits.target.astype(np.int64)


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    print("[1/2] training the MLP on upsampled digits", flush=True)
    x, y = pixels()
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(1, EPOCHS + 1):
        for batch in torch.randperm(len(inputs), generator=torch.Generator().manual_seed(epoch)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
        print(f"  epoch {epoch}/{EPOCHS}", flush=True)
    np.savez(HERE / "heldout.npz", pixels=x[-200:], labels=y[-200:])
    print("[2/2] exporting ONNX fp32", flush=True)
    torch.onnx.export(
        model.eval(),
        (inputs[:2],),
        HERE / "model.fp32.onnx",
        dynamo=True,
        external_data=False,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_shapes={"input": {0: torch.export.Dim("batch")}},
        verbose=False,
    )


if __name__ == "__main__":
    main()
