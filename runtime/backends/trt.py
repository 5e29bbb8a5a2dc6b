"""Native TensorRT backend: a serialized engine from the bundle's ``engines/`` cache.

TensorRT and cuda-python are imported lazily, only when this backend is chosen. The engine for
this GPU is found and checked by the same functions the builder uses
(:mod:`fundus_vessels.runtime.backends.device` for the GPU key,
:mod:`fundus_vessels.runtime.backends.engines` for names and staleness).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np

from fundus_vessels.runtime.backends.base import BackendError, require_precision, vessel_channel
from fundus_vessels.runtime.backends.device import check_cuda, cuda_status, load_cudart, query_gpu
from fundus_vessels.runtime.backends.engines import engine_path, loader_identity, stale_reason, trt_version_key
from fundus_vessels.runtime.bundle import Bundle

BUILD_HINT = "build it on this device with `fundus-export build-engine --bundle {root} --precision {precision}`"


def _tensorrt() -> ModuleType | None:
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        return None


def tensorrt_status() -> str | None:
    """None when TensorRT and a CUDA device are usable here, else the reason they are not."""
    if _tensorrt() is None:
        return "TensorRT Python package not installed (JetPack's on Jetson, else pip install 'fundus-vessels[gpu]')"
    return cuda_status()


def device_engine_path(bundle: Bundle, precision: str) -> Path:
    """Where this device's engine for ``precision`` lives in the bundle's cache (may not exist)."""
    trt = importlib.import_module("tensorrt")
    return engine_path(bundle.root, query_gpu(), trt.__version__, precision)


def engine_problem(bundle: Bundle, precision: str) -> str | None:
    """None when TensorRT runs here and the bundle holds a current engine for this GPU, else why not."""
    reason = tensorrt_status()
    if reason is not None:
        return reason
    trt = importlib.import_module("tensorrt")
    gpu = query_gpu()
    engine = engine_path(bundle.root, gpu, trt.__version__, precision)
    problem = stale_reason(engine, loader_identity(bundle, gpu, trt.__version__, precision))
    if problem is None:
        return None
    return f"{problem}; {BUILD_HINT.format(root=bundle.root, precision=precision)}"


def engine_ready(bundle: Bundle, precision: str) -> bool:
    """True when TensorRT runs here and the bundle holds a current engine built for this device."""
    return engine_problem(bundle, precision) is None


class TensorRTBackend:
    """Runs a TensorRT engine with explicit I/O tensors (TensorRT 10/11 ``execute_async_v3``)."""

    name = "trt"

    def __init__(self, bundle: Bundle, precision: str = "fp16", threads: int | None = None) -> None:
        require_precision(self.name, precision, ("fp32", "fp16", "int8"))
        reason = tensorrt_status()
        if reason is not None:
            raise BackendError(f"TensorRT backend unavailable: {reason}")
        problem = engine_problem(bundle, precision)
        if problem is not None:
            raise BackendError(f"TensorRT backend: {problem}")
        trt = importlib.import_module("tensorrt")
        self._cudart = load_cudart()
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.stream = None
        self.precision = precision
        self.vessel_index = bundle.vessel_index
        self.model_path = device_engine_path(bundle, precision)
        self.trt_version = trt_version_key(trt.__version__)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.model_path}: TensorRT could not deserialize the engine (rebuild it)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"{self.model_path}: TensorRT could not create an execution context")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if not inputs or not outputs:
            raise BackendError(f"{self.model_path}: engine lacks an input or output tensor")
        self.input_name = inputs[0]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        self.stream = check_cuda(self._cudart, self._cudart.cudaStreamCreate(), "cudaStreamCreate")

    def _check(self, result: tuple, call: str) -> object:
        return check_cuda(self._cudart, result, call)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._check(self._cudart.cudaFree(ptr), "cudaFree")
            ptr = int(self._check(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def _run(self, tiles: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        host_in = np.ascontiguousarray(tiles, dtype=self.input_dtype)
        if not self.context.set_input_shape(self.input_name, host_in.shape):
            raise BackendError(f"{self.model_path}: input shape {host_in.shape} is outside the engine's profile")
        host_out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), dtype=self.output_dtype)
        d_in = self._device_buffer("in", host_in.nbytes)
        d_out = self._device_buffer("out", host_out.nbytes)
        if not (
            self.context.set_tensor_address(self.input_name, d_in)
            and self.context.set_tensor_address(self.output_name, d_out)
        ):
            raise BackendError(f"{self.model_path}: TensorRT refused the device buffers")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            cudart.cudaMemcpyAsync(d_in, host_in.ctypes.data, host_in.nbytes, h2d, self.stream), "cudaMemcpyAsync"
        )
        if not self.context.execute_async_v3(self.stream):
            raise BackendError(f"{self.model_path}: TensorRT execution failed")
        self._check(
            cudart.cudaMemcpyAsync(host_out.ctypes.data, d_out, host_out.nbytes, d2h, self.stream), "cudaMemcpyAsync"
        )
        self._check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return vessel_channel(host_out, self.vessel_index)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        chunks = [self._run(tiles[i : i + self.max_batch]) for i in range(0, len(tiles), self.max_batch)]
        return np.concatenate(chunks)

    def close(self) -> None:
        """Free the device buffers and destroy the CUDA stream (also on garbage collection)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr, _ in self._buffers.values():
            cudart.cudaFree(ptr)
        self._buffers.clear()
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self) -> None:
        self.close()
