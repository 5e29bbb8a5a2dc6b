"""ONNX Runtime backend: CPU always; TensorRT / CUDA execution providers when installed."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from runtime.backends.base import BackendError, require_precision, vessel_channel
from runtime.bundle import Bundle, BundleError

# preferred first; only those the installed onnxruntime offers are used
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def default_providers() -> list[str]:
    """The installed execution providers in order of preference (CPU always last)."""
    available = set(ort.get_available_providers())
    return [p for p in PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]


def onnx_precision_key(bundle: Bundle, precision: str, providers: list[str]) -> str:
    """Which bundle file serves ``precision``: on a CPU-only ORT, INT8 uses the CPU-tuned file.

    ``model.int8.onnx`` (symmetric INT8, what TensorRT builds from) runs slower than FP32 on CPUs
    without VNNI; ``model.int8cpu.onnx`` (uint8 activations, narrow layers in FP32) is the fast one.
    """
    if precision == "int8" and providers == ["CPUExecutionProvider"] and bundle.has("int8_cpu"):
        return "int8_cpu"
    return precision


class OrtBackend:
    """Runs ``model.onnx`` / ``model.fp16.onnx`` / ``model.int8.onnx`` with any batch size."""

    name = "ort"

    def __init__(self, bundle: Bundle, precision: str = "fp32", threads: int | None = None) -> None:
        require_precision(self.name, precision, ("fp32", "fp16", "int8"))
        self.precision = precision
        providers = default_providers()
        self.model_path = bundle.model_path(onnx_precision_key(bundle, precision, providers))
        self.vessel_index = bundle.vessel_index
        options = ort.SessionOptions()
        # the arena grows in powers of two and keeps its peak: with it, a 3504x2336 image through
        # the full-width U-Net (batch 8) peaked at 1.24 GB RSS, without it at 0.84 GB
        options.enable_cpu_mem_arena = False
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{self.model_path}: ONNX Runtime cannot load it ({exc})") from exc
        model_input = self.session.get_inputs()[0]
        channels = model_input.shape[1] if len(model_input.shape) == 4 else None
        if channels != bundle.in_channels:
            raise BundleError(
                f"{self.model_path}: input {model_input.name} has shape {model_input.shape}, "
                f"model.json says {bundle.in_channels} channel(s)"
            )
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[0]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        feed = {self.input_name: tiles.astype(self.input_dtype, copy=False)}
        try:
            (out,) = self.session.run([self.output_name], feed)
        except Exception as exc:
            raise BackendError(f"{self.model_path}: inference failed ({exc})") from exc
        return vessel_channel(out, self.vessel_index)
