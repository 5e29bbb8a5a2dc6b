"""TensorRT engine cache of a bundle: file names, the shape profile, sidecars and staleness (no CUDA here).

Engines are not portable across GPUs or TensorRT versions, so each lives at
``BUNDLE/engines/<gpu key>-trt<major.minor.patch>-<precision>.engine`` (gpu key:
:attr:`fundus_vessels.runtime.backends.device.GpuInfo.key`) with a sidecar JSON (same stem) naming
what it was built from and for. One rule decides staleness for the builder and every loader
(:func:`stale_reason`); the C++ loader mirrors it (``cpp/src/trt_backend.cpp``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fundus_vessels.runtime.backends.device import GpuInfo
from fundus_vessels.runtime.bundle import Bundle
from fundus_vessels.runtime.inference import DEFAULT_BATCH

ENGINE_DIR = "engines"
# largest batch an engine's profile accepts; the runtimes split bigger batches
MAX_BATCH = 8


def trt_version_key(version: str) -> str:
    """``major.minor.patch`` of a TensorRT version (``tensorrt.__version__`` may add a build number)."""
    parts = version.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        raise ValueError(f"not a TensorRT version: {version!r}")
    return ".".join(parts[:3])


def engine_filename(gpu: GpuInfo, trt_version: str, precision: str) -> str:
    """E.g. ``orin-sm87-mp16-trt10.3.0-fp16.engine``."""
    return f"{gpu.key}-trt{trt_version_key(trt_version)}-{precision}.engine"


def engine_path(bundle_root: Path, gpu: GpuInfo, trt_version: str, precision: str) -> Path:
    """Where the engine of ``precision`` for ``gpu`` and TensorRT ``trt_version`` lives in a bundle."""
    return Path(bundle_root) / ENGINE_DIR / engine_filename(gpu, trt_version, precision)


def sidecar_path(engine: Path) -> Path:
    """The JSON next to an engine that records what it was built from."""
    return engine.with_suffix(".json")


@dataclass(frozen=True)
class Profile:
    """Optimisation profile of the input: (N, 1, tile, tile), N in [1, max_batch], tuned for ``opt_batch``.

    ``opt_batch`` defaults to the batch the runtimes send (:data:`runtime.inference.DEFAULT_BATCH`).
    """

    tile: int
    max_batch: int = MAX_BATCH
    opt_batch: int = DEFAULT_BATCH

    def shapes(self) -> dict[str, list[int]]:
        """min / opt / max shapes (opt capped at max)."""
        if self.max_batch < 1 or self.tile < 1 or self.opt_batch < 1:
            raise ValueError(f"need batches and tile >= 1, got max {self.max_batch}, opt {self.opt_batch}, {self.tile}")
        t, opt = self.tile, min(self.opt_batch, self.max_batch)
        return {"min": [1, 1, t, t], "opt": [opt, 1, t, t], "max": [self.max_batch, 1, t, t]}


def engine_identity(gpu: GpuInfo, trt_version: str, precision: str, source_sha256: str) -> dict[str, str]:
    """What every loader checks in a sidecar before it trusts an engine (all strings: C++ reads them too)."""
    return {
        "gpu_key": gpu.key,
        "tensorrt": trt_version_key(trt_version),
        "precision": precision,
        "source_sha256": source_sha256,
    }


def loader_identity(bundle: Bundle, gpu: GpuInfo, trt_version: str, precision: str) -> dict[str, str]:
    """:func:`engine_identity` of the bundle's current ``precision`` ONNX file."""
    sha = str(bundle.meta.get("files", {}).get(precision, {}).get("sha256", ""))
    return engine_identity(gpu, trt_version, precision, sha)


def stale_reason(engine: Path, wanted: dict) -> str | None:
    """None when ``engine`` exists and its sidecar matches ``wanted`` on every key, else why not.

    An engine without a readable sidecar is stale: nothing says what it was built from.
    """
    side = sidecar_path(engine)
    if not engine.is_file():
        return f"{engine}: no such engine"
    try:
        recorded = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return f"{side}: missing or unreadable, so nothing says what {engine.name} was built from"
    changed = [k for k, v in wanted.items() if recorded.get(k) != v]
    if changed:
        detail = ", ".join(f"{k} {recorded.get(k)!r} != {wanted[k]!r}" for k in changed)
        return f"{engine}: built for something else ({detail})"
    return None
