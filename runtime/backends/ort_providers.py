"""ONNX Runtime execution providers with their options: TensorRT's engine cache, shape profile and precision.

Without options ONNX Runtime's TensorRT provider builds a TensorRT engine at every session start
and again for every new batch size. Here it gets:

* an engine cache per bundle file, GPU, TensorRT and ONNX Runtime version (ONNX Runtime does not
  invalidate its cache when any of them changes), in ``BUNDLE/engines/ort-trt/`` when the bundle is
  writable, else in ``$XDG_CACHE_HOME/fundus-vessels/ort-trt/`` (``~/.cache``), plus a timing cache;
* one explicit shape profile, the same as the native engines' (:class:`engines.Profile`:
  batch 1 to :data:`engines.MAX_BATCH`, tuned for the runtime's default batch);
* FP16 for the FP16 file, INT8 for the QDQ file (explicit quantization: no calibration table).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import onnxruntime as ort

from fundus_vessels.runtime.backends.base import BackendError
from fundus_vessels.runtime.backends.device import query_gpu
from fundus_vessels.runtime.backends.engines import ENGINE_DIR, MAX_BATCH, Profile
from fundus_vessels.runtime.bundle import Bundle

TENSORRT_EP = "TensorrtExecutionProvider"
CACHE_ENV = "XDG_CACHE_HOME"
ProviderSpec = str | tuple[str, dict[str, str]]


def _writable(folder: Path) -> bool:
    """True when ``folder`` (or its nearest existing parent) can be written."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return os.access(candidate, os.W_OK)
    return False


def _versions_key() -> str:
    """GPU key, TensorRT and ONNX Runtime versions: what ONNX Runtime's cache silently depends on."""
    try:
        gpu = query_gpu().key
    except BackendError:
        gpu = "gpu"
    try:
        trt = "trt" + importlib.import_module("tensorrt").__version__
    except ImportError:
        trt = "trt"
    return f"{gpu}-{trt}-ort{ort.__version__}"


def trt_cache_dir(bundle: Bundle, file_key: str) -> Path:
    """Folder for ONNX Runtime's TensorRT engine cache of one bundle file (``file_key``: fp32, fp16, int8...)."""
    sha = str(bundle.meta.get("files", {}).get(file_key, {}).get("sha256", "unknown"))[:12]
    leaf = Path("ort-trt") / f"{bundle.root.name}-{file_key}-{sha}-{_versions_key()}"
    in_bundle = bundle.root / ENGINE_DIR / leaf
    if _writable(in_bundle):
        return in_bundle
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache")
    return base / "fundus-vessels" / leaf


def shape_option(name: str, shape: list[int]) -> str:
    """ONNX Runtime's profile syntax: ``image:4x1x256x256``."""
    return f"{name}:{'x'.join(str(d) for d in shape)}"


def tensorrt_options(bundle: Bundle, file_key: str, cache_dir: Path) -> dict[str, str]:
    """Options of ONNX Runtime's TensorRT provider for one bundle file."""
    name = bundle.spec.input.name
    shapes = Profile(bundle.tile, MAX_BATCH).shapes()
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_profile_min_shapes": shape_option(name, shapes["min"]),
        "trt_profile_opt_shapes": shape_option(name, shapes["opt"]),
        "trt_profile_max_shapes": shape_option(name, shapes["max"]),
        "trt_fp16_enable": str(file_key == "fp16"),
        "trt_int8_enable": str(file_key == "int8"),
    }


def provider_specs(providers: list[str], bundle: Bundle, file_key: str) -> list[ProviderSpec]:
    """``providers`` as ``InferenceSession`` takes them, the TensorRT one with its options (cache folder made)."""
    specs: list[ProviderSpec] = []
    for provider in providers:
        if provider == TENSORRT_EP:
            cache = trt_cache_dir(bundle, file_key)
            cache.mkdir(parents=True, exist_ok=True)
            specs.append((provider, tensorrt_options(bundle, file_key, cache)))
        else:
            specs.append(provider)
    return specs
