"""TensorRT engines built on the device from a bundle's ONNX, cached per GPU/TensorRT/precision.

Engines are not portable across GPUs or TensorRT versions, so each lives at
``BUNDLE/engines/<gpu>-sm<cc>-trt<version>-<precision>.engine`` with a sidecar JSON naming what
it was built from; a changed source model or profile rebuilds it. TensorRT (10 or 11) is
imported only when an engine is built. Networks are strongly typed (the only mode TensorRT 11
has): precision comes from the ONNX types, i.e. from ``model.fp16.onnx`` / ``model.int8.onnx``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fundus_vessels.export.errors import ExportError
from fundus_vessels.export.metadata import INPUT_NAME
from fundus_vessels.runtime.backends.trt import ENGINE_DIR, engine_filename
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, load_bundle
from fundus_vessels.runtime.imageio import write_bytes, write_json

# engine precisions; each is built from the bundle's ONNX of that precision (strong typing)
PRECISIONS = ("fp32", "fp16", "int8")
MAKE_SOURCE = {"fp16": "fundus-export fp16 --bundle DIR", "int8": "python -m fundus_vessels.calib --bundle DIR ..."}


@dataclass(frozen=True)
class Device:
    """The GPU an engine is built for and the TensorRT that builds it."""

    gpu: str
    compute_capability: tuple[int, int]
    tensorrt: str


@dataclass(frozen=True)
class Profile:
    """Optimisation profile of the ``image`` input: (N, 1, tile, tile) for N in [1, max_batch]."""

    tile: int
    max_batch: int

    def shapes(self) -> dict[str, list[int]]:
        """min / opt / max shapes; opt is the full batch the runtimes send."""
        if self.max_batch < 1 or self.tile < 1:
            raise ValueError(f"need max_batch >= 1 and tile >= 1, got {self.max_batch}, {self.tile}")
        return {
            "min": [1, 1, self.tile, self.tile],
            "opt": [self.max_batch, 1, self.tile, self.tile],
            "max": [self.max_batch, 1, self.tile, self.tile],
        }


def engine_path(bundle_root: Path, device: Device, precision: str) -> Path:
    """The cache file the runtime's TensorRT backend looks for (same naming function)."""
    filename = engine_filename(device.gpu, device.compute_capability, device.tensorrt, precision)
    return bundle_root / ENGINE_DIR / filename


def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def sidecar(
    device: Device, precision: str, source: Path, source_sha256: str, profile: Profile, workspace_mb: int
) -> dict:
    """What an engine was built from and for (written next to it as JSON)."""
    major, minor = device.compute_capability
    return {
        "gpu": device.gpu,
        "compute_capability": f"{major}.{minor}",
        "tensorrt": device.tensorrt,
        "precision": precision,
        "source_model": source.name,
        "source_sha256": source_sha256,
        "input": INPUT_NAME,
        "profile": profile.shapes(),
        "workspace_mb": workspace_mb,
    }


def is_current(engine: Path, wanted: dict) -> bool:
    """True when ``engine`` exists and its sidecar matches ``wanted`` on every build input."""
    side = sidecar_path(engine)
    if not (engine.is_file() and side.is_file()):
        return False
    try:
        recorded = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return all(recorded.get(k) == v for k, v in wanted.items())


def import_tensorrt():
    """The ``tensorrt`` module, or an :class:`ExportError` saying it is missing."""
    try:
        import tensorrt
    except ImportError as exc:
        raise ExportError(
            "TensorRT is not installed here: build engines on the target device with the 'gpu' extra "
            "(pip install .[gpu]); the ONNX files in the bundle are all this machine can make."
        ) from exc
    return tensorrt


def query_device(tensorrt_version: str) -> Device:
    """Name and compute capability of GPU 0 (via torch.cuda, else nvidia-smi)."""
    import torch

    if torch.cuda.is_available():
        return Device(torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0)), tensorrt_version)
    try:
        line = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        name, cc = (part.strip() for part in line.rsplit(",", 1))
        major, minor = (int(v) for v in cc.split("."))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ExportError(f"no CUDA GPU found to build a TensorRT engine for ({exc})") from exc
    return Device(name, (major, minor), tensorrt_version)


def source_model(bundle: Bundle, precision: str) -> tuple[Path, str]:
    """The ONNX file an engine of ``precision`` is built from and its recorded sha256."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if not bundle.has(precision):
        hint = MAKE_SOURCE.get(precision, "fundus-export onnx").replace("DIR", str(bundle.root))
        raise ExportError(f"{bundle.root / PRECISION_FILES[precision]}: missing; make it first with `{hint}`")
    return bundle.model_path(precision), bundle.meta["files"][precision]["sha256"]


def serialize_engine(trt, onnx_path: Path, profile: Profile, workspace_mb: int) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build a serialised engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10: explicit batch is the default, strong typing is opt-in; TensorRT 11: always on.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if major == 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT could not parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    shapes = profile.shapes()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    return bytes(plan)


def build_engine(
    bundle_dir: str | os.PathLike,
    precision: str = "fp16",
    max_batch: int = 8,
    workspace_mb: int = 1024,
    force: bool = False,
) -> Path:
    """Build (or reuse) the engine of ``precision`` for this GPU; returns the engine path."""
    trt = import_tensorrt()
    bundle = load_bundle(bundle_dir)
    source, sha = source_model(bundle, precision)
    device = query_device(trt.__version__)
    profile = Profile(bundle.tile, max_batch)
    path = engine_path(bundle.root, device, precision)
    wanted = sidecar(device, precision, source, sha, profile, workspace_mb)
    if force or not is_current(path, wanted):
        write_bytes(path, serialize_engine(trt, source, profile, workspace_mb))
        write_json(sidecar_path(path), wanted)
    return path
