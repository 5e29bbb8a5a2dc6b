"""ONNX Runtime backend: CPU always; TensorRT / CUDA execution providers when installed and loaded.

:func:`open_session` and :func:`session_predictor` are the one way this project runs an ONNX file
in ONNX Runtime: the backend below, and INT8 calibration, its report and parity checks, use them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fundus_vessels.runtime.backends.base import BackendError, require_precision, vessel_channel
from fundus_vessels.runtime.backends.engines import MAX_BATCH
from fundus_vessels.runtime.backends.ort_providers import TENSORRT_EP, ProviderSpec, provider_specs
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, BundleError
from fundus_vessels.runtime.inference import TilePredictor

# preferred first; only those the installed onnxruntime offers are used
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CPU_ONLY = ("CPUExecutionProvider",)


def default_providers() -> list[str]:
    """The installed execution providers in order of preference (CPU always last)."""
    available = set(ort.get_available_providers())
    return [p for p in PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]


def gpu_provider() -> str | None:
    """The first GPU execution provider the installed onnxruntime offers (TensorRT, CUDA), else None."""
    available = set(ort.get_available_providers())
    return next((p for p in PROVIDER_ORDER[:-1] if p in available), None)


def open_session(
    path: str | os.PathLike,
    providers: Sequence[ProviderSpec] = CPU_ONLY,
    threads: int | None = None,
    optimized_path: str | os.PathLike | None = None,
) -> ort.InferenceSession:
    """An inference session on ``path``; raises :class:`BundleError` naming the file if it cannot load.

    Args:
        providers: execution providers, preferred first, each a name or (name, options) (default: the CPU only).
        threads: intra-op threads (None or 0: ONNX Runtime's default, one per physical core).
        optimized_path: also save the graph after ONNX Runtime's fusions there (to inspect it).
    """
    options = ort.SessionOptions()
    # the CPU memory arena stays on: without it every run allocates its activations afresh,
    # 10-25 % slower per tile (width-0.25 U-Net, batch 1-8). It keeps its peak, which the
    # pipeline bounds with a small batch (full-width U-Net, batch 8, 3504x2336: 1.24 GB RSS)
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BundleError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc


def session_predictor(session: ort.InferenceSession, vessel_index: int = 1, label: str = "model") -> TilePredictor:
    """(n, 1, t, t) float32 tiles → (n, t, t) float32 vessel probability through ``session``.

    Tiles are cast to the model's input type (FP16 files may take float16); ``label`` names the
    model in the error raised when a run fails.
    """
    model_input = session.get_inputs()[0]
    name = model_input.name
    dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
    outputs = [o.name for o in session.get_outputs()]
    output = "probabilities" if "probabilities" in outputs else outputs[0]

    def predict(tiles: np.ndarray) -> np.ndarray:
        try:
            (probabilities,) = session.run([output], {name: np.ascontiguousarray(tiles, dtype=dtype)})
        except Exception as exc:
            raise BackendError(f"{label}: inference failed ({exc})") from exc
        return vessel_channel(probabilities, vessel_index)

    return predict


def open_backend_session(
    bundle: Bundle, precision: str, threads: int | None = None
) -> tuple[Path, ort.InferenceSession]:
    """The bundle file serving ``precision`` and its session, chosen from the providers that actually loaded.

    On the CPU, FP32 opens ``model.dynamic.onnx`` (the same graph taking any height and width) when
    ``model.json`` enables whole-image passes (``tiling.whole_image``), so that one session serves both.
    ``model.int8.onnx`` (symmetric INT8, what TensorRT builds from) runs slower than FP32 on CPUs
    without VNNI; ``model.int8cpu.onnx`` (uint8 activations, narrow layers in FP32) is the fast one.
    A GPU provider that is installed but fails to load (no device, wrong CUDA) leaves the CPU only,
    so the CPU file is then opened instead.
    """
    providers = default_providers()
    cpu_file = precision == "int8" and bundle.has("int8_cpu")
    key = "int8_cpu" if cpu_file and providers == list(CPU_ONLY) else precision
    if key == "fp32" and providers == list(CPU_ONLY) and bundle.whole_image and bundle.has("fp32_dynamic"):
        key = "fp32_dynamic"  # model.onnx's graph and weights, any height and width: whole-image passes
    path = bundle.model_path(key)
    session = open_session(path, provider_specs(providers, bundle, key), threads)
    if key == "int8" and cpu_file and session.get_providers() == list(CPU_ONLY):
        path = bundle.model_path("int8_cpu")
        session = open_session(path, CPU_ONLY, threads)
    return path, session


class OrtBackend:
    """Runs ``model.onnx`` / ``model.fp16.onnx`` / ``model.int8.onnx`` with any batch size."""

    name = "ort"

    def __init__(self, bundle: Bundle, precision: str = "fp32", threads: int | None = None) -> None:
        require_precision(self.name, precision, ("fp32", "fp16", "int8"))
        self.precision = precision
        self.model_path, self.session = open_backend_session(bundle, precision, threads)
        # TensorRT's profile takes at most MAX_BATCH tiles; bigger batches are split
        self.max_batch = MAX_BATCH if TENSORRT_EP in self.providers else None
        model_input = self.session.get_inputs()[0]
        channels = model_input.shape[1] if len(model_input.shape) == 4 else None
        if channels != bundle.in_channels:
            raise BundleError(
                f"{self.model_path}: input {model_input.name} has shape {model_input.shape}, "
                f"model.json says {bundle.in_channels} channel(s)"
            )
        self._predict = session_predictor(self.session, bundle.vessel_index, str(self.model_path))
        # (1, 1, H, W) planes of any size: the dynamic file only (the others are fixed to the tile)
        self.any_size = self.model_path.name == PRECISION_FILES["fp32_dynamic"]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        step = self.max_batch or len(tiles) or 1
        if len(tiles) <= step:
            return self._predict(tiles)
        return np.concatenate([self._predict(tiles[i : i + step]) for i in range(0, len(tiles), step)])
