"""``fundus-export build-engine``: a TensorRT engine for this GPU, cached in the bundle's ``engines/``.

The builder itself lives in the runtime (:mod:`fundus_vessels.runtime.backends.trt_build`): a device
installs the runtime and the ``gpu`` extra, without torch, and ``fundus-infer --self-test`` builds
engines the same way. This stage only turns its errors into :class:`ExportError`. Nothing here
imports torch or onnx (import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.backends.base import BackendError
from fundus_vessels.runtime.backends.engines import MAX_BATCH
from fundus_vessels.runtime.backends.trt_build import PRECISIONS, WORKSPACE_MB
from fundus_vessels.runtime.backends.trt_build import build_engine as build_device_engine

__all__ = ["PRECISIONS", "build_engine"]


def build_engine(
    bundle_dir: str | os.PathLike,
    precision: str = "fp16",
    max_batch: int = MAX_BATCH,
    workspace_mb: int = WORKSPACE_MB,
    force: bool = False,
) -> Path:
    """Build (or reuse) the engine of ``precision`` for this GPU; returns the engine path."""
    try:
        return build_device_engine(bundle_dir, precision, max_batch, workspace_mb, force)
    except BackendError as exc:
        raise ExportError(str(exc)) from exc
