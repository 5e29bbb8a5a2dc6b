"""PyTorch → ONNX bundle (FP32, static, FP16), TensorRT engines and parity checks (uses torch)."""
