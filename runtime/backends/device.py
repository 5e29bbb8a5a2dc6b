"""This machine's CUDA device as TensorRT engines are keyed: the one query the builder and loaders share.

The key comes from ``cudaGetDeviceProperties`` of CUDA device 0, i.e. the first device
``CUDA_VISIBLE_DEVICES`` leaves visible (``nvidia-smi`` ignores that variable, so it is not used).
Name and compute capability alone cannot tell an AGX Orin from an Orin Nano (both "Orin", sm87),
so the multiprocessor count is part of the key: ``orin-sm87-mp16`` vs ``orin-sm87-mp8``. The C++
runtime computes the same key (``cpp/src/trt_backend.cpp``, ``gpuKey``).

cuda-python is imported lazily; a CUDA runtime that cannot start is reported with CUDA's own
error name and text (e.g. ``cudaErrorInsufficientDriver`` when cuda-python 13 meets a CUDA 12
driver), never as "no device".
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from types import ModuleType

from fundus_vessels.runtime.backends.base import BackendError

CUDA_PYTHON_HINT = (
    "install cuda-python of the device's CUDA major (JetPack 6 / CUDA 12: pip install 'cuda-python>=12,<13')"
)


@dataclass(frozen=True)
class GpuInfo:
    """What identifies a GPU for a TensorRT engine (fields of ``cudaDeviceProp``)."""

    name: str
    compute_capability: tuple[int, int]
    multiprocessors: int

    @property
    def key(self) -> str:
        """``<name slug>-sm<major><minor>-mp<multiprocessors>``, e.g. ``nvidia-h100-80gb-hbm3-sm90-mp132``."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "gpu"
        major, minor = self.compute_capability
        return f"{slug}-sm{major}{minor}-mp{self.multiprocessors}"


def load_cudart() -> ModuleType | None:
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or the older ``cuda.cudart``); None if absent."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _text(value: object) -> str:
    return value.decode(errors="replace").rstrip("\x00") if isinstance(value, bytes) else str(value)


def cuda_error_text(cudart: ModuleType, err: object) -> str:
    """``cudaErrorX (CUDA's description)`` for a cuda-python error code."""
    try:
        name = _text(cudart.cudaGetErrorName(err)[1])
        text = _text(cudart.cudaGetErrorString(err)[1])
    except Exception:  # an error code the bindings cannot describe
        return f"CUDA error {int(err)}"
    return f"{name} ({text})"


def check_cuda(cudart: ModuleType, result: tuple, call: str) -> object:
    """Unwrap a cuda-python ``(error, value...)`` tuple; a CUDA error raises :class:`BackendError` naming ``call``."""
    err, *values = result
    if int(err) != 0:
        raise BackendError(f"{call} failed: {cuda_error_text(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _visible() -> str:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "" if value is None else f" (CUDA_VISIBLE_DEVICES={value!r})"


def query_gpu(cudart: ModuleType | None = None) -> GpuInfo:
    """The GPU TensorRT builds and runs on: CUDA device 0 as the CUDA runtime sees it.

    Raises :class:`BackendError` with the reason when cuda-python is missing, the CUDA runtime
    cannot start (its error is kept) or no device is visible.
    """
    cudart = cudart or load_cudart()
    if cudart is None:
        raise BackendError(f"cuda-python is not installed: {CUDA_PYTHON_HINT}")
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        raise BackendError(
            f"the CUDA runtime cannot start: {cuda_error_text(cudart, err)}{_visible()}; "
            f"if the driver is older than cuda-python's CUDA, {CUDA_PYTHON_HINT}"
        )
    if count == 0:
        raise BackendError(f"no CUDA device visible{_visible()}")
    props = check_cuda(cudart, cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties(0)")
    return GpuInfo(_text(props.name), (int(props.major), int(props.minor)), int(props.multiProcessorCount))


def cuda_status(cudart: ModuleType | None = None) -> str | None:
    """None when a CUDA device is usable here, else the reason (CUDA's own error kept)."""
    try:
        query_gpu(cudart)
    except BackendError as exc:
        return str(exc)
    return None
