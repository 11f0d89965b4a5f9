"""Model runtimes: ONNX Runtime and TorchScript behind one small interface."""
