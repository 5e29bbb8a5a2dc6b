"""Native TensorRT backend: a serialized engine from the bundle's ``engines/`` cache.

TensorRT and cuda-python are imported lazily, only when this backend is chosen. Engines are not
portable across GPUs or TensorRT versions, so the cache key names both:
``engines/<gpu-name>-sm<major><minor>-trt<version>-<precision>.engine`` (built by
``fundus-export build-engine``).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import ModuleType

import numpy as np
from fundus_vessels.runtime.backends.base import BackendError, require_precision, vessel_channel
from fundus_vessels.runtime.bundle import Bundle

ENGINE_DIR = "engines"


def engine_filename(gpu_name: str, compute_capability: tuple[int, int], trt_version: str, precision: str) -> str:
    """Cache file name of an engine, e.g. ``nvidia-h100-80gb-hbm3-sm90-trt10.3.0-fp16.engine``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    major, minor = compute_capability
    return f"{slug}-sm{major}{minor}-trt{trt_version}-{precision}.engine"


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _cudart() -> ModuleType | None:
    """cuda-python's runtime bindings (new and old module layout)."""
    return _import("cuda.bindings.runtime") or _import("cuda.cudart")


def _check(result: tuple) -> object:
    """Unwrap a cuda-python ``(error, value...)`` tuple, raising on a CUDA error."""
    err, *values = result
    if int(err) != 0:
        raise BackendError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values)


def tensorrt_status() -> str | None:
    """None when TensorRT and a CUDA device are usable here, else the reason they are not."""
    if _import("tensorrt") is None:
        return "TensorRT Python package not installed (pip install fundus-vessels[gpu])"
    cudart = _cudart()
    if cudart is None:
        return "cuda-python not installed (pip install cuda-python)"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        return "no CUDA device visible"
    return None


def device_engine_path(bundle: Bundle, precision: str) -> Path:
    """Where this device's engine for ``precision`` lives in the bundle's cache (may not exist)."""
    trt, cudart = importlib.import_module("tensorrt"), _cudart()
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    filename = engine_filename(name, (props.major, props.minor), trt.__version__, precision)
    return bundle.root / ENGINE_DIR / filename


def engine_is_stale(engine: Path, bundle: Bundle, precision: str) -> bool:
    """True when the engine's sidecar (``.json``) says it was built from another ONNX file."""
    sidecar = engine.with_suffix(".json")
    if not sidecar.is_file():
        return False
    try:
        built_from = json.loads(sidecar.read_text()).get("source_sha256")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return built_from != bundle.meta.get("files", {}).get(precision, {}).get("sha256")


def engine_ready(bundle: Bundle, precision: str) -> bool:
    """True when TensorRT runs here and the bundle holds a current engine built for this device."""
    if tensorrt_status() is not None:
        return False
    engine = device_engine_path(bundle, precision)
    return engine.is_file() and not engine_is_stale(engine, bundle, precision)


class TensorRTBackend:
    """Runs a TensorRT engine with explicit I/O tensors (TensorRT 10 ``execute_async_v3``)."""

    name = "trt"

    def __init__(self, bundle: Bundle, precision: str = "fp16", threads: int | None = None) -> None:
        require_precision(self.name, precision, ("fp32", "fp16", "int8"))
        reason = tensorrt_status()
        if reason is not None:
            raise BackendError(f"TensorRT backend unavailable: {reason}")
        trt = importlib.import_module("tensorrt")
        self._cudart = _cudart()
        self.precision = precision
        self.vessel_index = bundle.vessel_index
        self.model_path = device_engine_path(bundle, precision)
        if not self.model_path.is_file():
            hint = f"run `fundus-export build-engine {bundle.root}`"
            raise BackendError(f"{self.model_path}: no engine for this GPU; {hint}")
        if engine_is_stale(self.model_path, bundle, precision):
            hint = f"run `fundus-export build-engine {bundle.root}`"
            raise BackendError(f"{self.model_path}: built from an older {precision} ONNX file; {hint}")
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.model_path}: TensorRT could not deserialize the engine (rebuild it)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self.input_name = inputs[0]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.stream = _check(self._cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr))
            ptr = int(_check(self._cudart.cudaMalloc(nbytes)))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _run(self, tiles: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        host_in = np.ascontiguousarray(tiles, dtype=self.input_dtype)
        self.context.set_input_shape(self.input_name, host_in.shape)
        host_out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.output_dtype)
        d_in = self._device_buffer("in", host_in.nbytes)
        d_out = self._device_buffer("out", host_out.nbytes)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(d_in, host_in.ctypes.data, host_in.nbytes, h2d, self.stream))
        self.context.set_tensor_address(self.input_name, d_in)
        self.context.set_tensor_address(self.output_name, d_out)
        if not self.context.execute_async_v3(self.stream):
            raise BackendError(f"{self.model_path}: TensorRT execution failed")
        _check(cudart.cudaMemcpyAsync(host_out.ctypes.data, d_out, host_out.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return vessel_channel(host_out, self.vessel_index)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        chunks = [self._run(tiles[i : i + self.max_batch]) for i in range(0, len(tiles), self.max_batch)]
        return np.concatenate(chunks)

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)
