"""Tile predictors over one model bundle: ONNX Runtime, OpenCV DNN, TensorRT, PyTorch (reference).

Each backend module is imported only when chosen, so ``runtime`` runs without torch, TensorRT or
CUDA installed. ``auto`` picks TensorRT when it runs here and the bundle holds an engine for this
GPU; else ONNX Runtime when it has a GPU provider; else, for FP32 on a CPU, OpenCV DNN when the bundle
holds its static-shape file (1.2-1.4x faster than ONNX Runtime here: docs/benchmark.md, same masks);
else ONNX Runtime. A TensorRT backend that fails to start falls back to ONNX Runtime.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points

from fundus_vessels.runtime.backends.base import Backend, BackendError
from fundus_vessels.runtime.bundle import Bundle
from fundus_vessels.runtime.extras import extra_hint

BACKENDS = ("auto", "ort", "trt", "opencv", "triton", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
PLUGIN_GROUP = "fundus_vessels.backends"

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "BackendError", "create_backend", "resolve_backend"]


def resolve_backend(name: str, bundle: Bundle, precision: str) -> str:
    """The concrete backend for ``name`` (``auto`` → ``trt``, ``ort`` or ``opencv``; see the module docstring)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    from fundus_vessels.runtime.backends.ort import gpu_provider
    from fundus_vessels.runtime.backends.trt import engine_ready

    if engine_ready(bundle, precision):
        return "trt"
    if precision == "fp32" and bundle.has("fp32_static") and gpu_provider() is None:
        return "opencv"
    return "ort"


def create_backend(
    name: str,
    bundle: Bundle,
    precision: str = "fp32",
    threads: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    url: str | None = None,
) -> Backend:
    """Build backend ``name`` for ``bundle`` at ``precision`` (``checkpoint``: ``torch`` only; ``url``: ``triton``)."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    chosen = resolve_backend(name, bundle, precision)
    if name == "auto" and chosen == "trt":
        return _tensorrt_or_ort(bundle, precision, threads)
    name = chosen
    if name == "ort":
        from fundus_vessels.runtime.backends.ort import OrtBackend

        return OrtBackend(bundle, precision, threads)
    if name == "opencv":
        from fundus_vessels.runtime.backends.opencv_dnn import OpenCVBackend

        return OpenCVBackend(bundle, precision, threads)
    if name == "trt":
        from fundus_vessels.runtime.backends.trt import TensorRTBackend

        return TensorRTBackend(bundle, precision, threads)
    if name == "triton":
        from fundus_vessels.runtime.backends.triton import TritonBackend

        return TritonBackend(bundle, precision, threads, url)
    return plugin_backend(name)(bundle, precision, threads, checkpoint)


def _tensorrt_or_ort(bundle: Bundle, precision: str, threads: int | None) -> Backend:
    """``auto`` with an engine for this GPU: TensorRT, or ONNX Runtime (with a warning) if TensorRT fails to start."""
    from fundus_vessels.runtime.backends.ort import OrtBackend
    from fundus_vessels.runtime.backends.trt import TensorRTBackend

    try:
        return TensorRTBackend(bundle, precision, threads)
    except (RuntimeError, OSError) as exc:  # BackendError, or TensorRT's own errors
        logging.getLogger(__name__).warning("backend auto: TensorRT failed to start (%s); using ONNX Runtime", exc)
    return OrtBackend(bundle, precision, threads)


def plugin_backend(name: str) -> type:
    """A backend class registered by an installed package under the entry-point group ``fundus_vessels.backends``.

    ``torch`` comes from :mod:`fundus_vessels.train.backend` (the training extra), so the runtime
    never imports torch itself.
    """
    found = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name == name]
    if not found:
        raise BackendError(f"backend {name!r} is not installed: pip install 'fundus-vessels[train]'")
    try:
        return found[0].load()
    except ModuleNotFoundError as exc:
        raise BackendError(f"backend {name!r} {extra_hint('train', (exc.name or 'torch').split('.')[0])}") from exc
