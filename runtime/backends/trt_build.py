"""Build TensorRT engines on the device from a bundle's ONNX, cached per GPU / TensorRT / precision.

Lives in the runtime (a device installs the runtime and the ``gpu`` extra, never torch) so that
``fundus-export build-engine`` and ``fundus-infer --self-test`` build engines the same way.
TensorRT (10 or 11) is imported only here and only when an engine is built. Networks are strongly
typed (the only mode TensorRT 11 has): precision comes from the ONNX types, i.e. from
``model.fp16.onnx`` / ``model.int8.onnx``. TF32 is cleared so FP32 layers run in FP32 (the FP32
engine is held to 1e-4, and the FP32 parts of the FP16/INT8 files are FP32 for accuracy).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from fundus_vessels.runtime.backends.base import BackendError
from fundus_vessels.runtime.backends.device import GpuInfo, query_gpu
from fundus_vessels.runtime.backends.engines import (
    MAX_BATCH,
    Profile,
    engine_identity,
    engine_path,
    sidecar_path,
    stale_reason,
    trt_version_key,
)
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, load_bundle
from fundus_vessels.runtime.imageio import write_bytes, write_json

PRECISIONS = ("fp32", "fp16", "int8")
MAKE_SOURCE = {"fp16": "fundus-export fp16 --bundle DIR", "int8": "python -m fundus_vessels.calib --bundle DIR ..."}
WORKSPACE_MB = 1024


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or a :class:`BackendError` saying it is missing, in one sentence."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendError(
            "TensorRT is not installed here: build engines on the target device with its TensorRT "
            "(JetPack's on Jetson, else pip install 'fundus-vessels[gpu]'); the ONNX files in the bundle are all "
            "this machine can use."
        ) from exc


def input_name(bundle: Bundle) -> str:
    """The model input's name, from ``model.json``."""
    return bundle.spec.input.name


def build_record(
    bundle: Bundle, gpu: GpuInfo, trt_version: str, precision: str, profile: Profile, workspace_mb: int
) -> dict:
    """The sidecar of an engine: :func:`engine_identity` plus every other build input."""
    source = PRECISION_FILES[precision]
    sha = str(bundle.meta["files"][precision]["sha256"])
    major, minor = gpu.compute_capability
    return {
        **engine_identity(gpu, trt_version, precision, sha),
        "gpu": gpu.name,
        "compute_capability": f"{major}.{minor}",
        "multiprocessors": gpu.multiprocessors,
        "source_model": source,
        "input": input_name(bundle),
        "profile": profile.shapes(),
        "workspace_mb": workspace_mb,
    }


def source_model(bundle: Bundle, precision: str) -> Path:
    """The ONNX file an engine of ``precision`` is built from (sha256-checked)."""
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if not bundle.has(precision):
        hint = MAKE_SOURCE.get(precision, "fundus-export onnx").replace("DIR", str(bundle.root))
        raise BackendError(f"{bundle.root / PRECISION_FILES[precision]}: missing; make it first with `{hint}`")
    return bundle.model_path(precision)


def network_flags(trt: ModuleType) -> int:
    """TensorRT 10: strong typing is opt-in (explicit batch is the default); TensorRT 11: always on, flag ignored."""
    if int(trt.__version__.split(".")[0]) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def serialize_engine(trt: ModuleType, onnx_path: Path, name: str, profile: Profile, workspace_mb: int) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build a serialised engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"{onnx_path}: TensorRT could not parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None:
        config.clear_flag(tf32)
    shapes = profile.shapes()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    return bytes(plan)


def build_engine(
    bundle_dir: str | os.PathLike | Bundle,
    precision: str = "fp16",
    max_batch: int = MAX_BATCH,
    workspace_mb: int = WORKSPACE_MB,
    force: bool = False,
) -> Path:
    """Build (or reuse, when current) the engine of ``precision`` for this GPU; returns its path."""
    trt = import_tensorrt()
    bundle = bundle_dir if isinstance(bundle_dir, Bundle) else load_bundle(bundle_dir)
    source = source_model(bundle, precision)
    gpu = query_gpu()
    version = trt_version_key(trt.__version__)
    profile = Profile(bundle.tile, max_batch)
    path = engine_path(bundle.root, gpu, version, precision)
    wanted = build_record(bundle, gpu, version, precision, profile, workspace_mb)
    if force or stale_reason(path, wanted) is not None:
        write_bytes(path, serialize_engine(trt, source, input_name(bundle), profile, workspace_mb))
        write_json(sidecar_path(path), wanted)
    return path
