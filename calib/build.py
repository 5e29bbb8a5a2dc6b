"""Calibrate, quantize, gate and register ``model.int8.onnx`` in a bundle."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from fundus_vessels.calib.check import DEFAULT_GATE, CalibrationError, Gate, accuracy_gate
from fundus_vessels.calib.quantize import quantize_int8
from fundus_vessels.calib.targets import DEFAULT_METHODS, TARGET_FILES, TARGET_PRECISION
from fundus_vessels.calib.tensorrt_rules import tensorrt_int8_problems
from fundus_vessels.calib.tiles import TileSet
from fundus_vessels.runtime.backends.ort import open_session, session_predictor
from fundus_vessels.runtime.bundle import load_bundle
from fundus_vessels.runtime.imageio import write_bytes


def require_tensorrt_rules(path: Path, float_nodes: list[str]) -> None:
    """Raise :class:`CalibrationError` when the TensorRT file breaks TensorRT's explicit-quantization rules."""
    problems = tensorrt_int8_problems(onnx.load(str(path)), float_nodes)
    if problems:
        shown = "; ".join(problems[:5])
        raise CalibrationError(f"{path.name}: TensorRT would reject it: {shown} ({len(problems)} problem(s))")


def add_int8(
    bundle_dir: str | os.PathLike,
    calibration: TileSet,
    heldout: TileSet,
    method: str | None = None,
    provenance: dict | None = None,
    gate: Gate = DEFAULT_GATE,
    target: str = "tensorrt",
) -> Path:
    """Quantize the bundle's FP32 model on ``calibration``; ship it only if it passes the gate.

    Args:
        bundle_dir: bundle with a ``model.onnx``.
        calibration: tiles whose activation ranges set the INT8 scales.
        heldout: tiles (from other images) the INT8 model is checked on against FP32.
        method: ``minmax``, ``entropy`` or ``percentile``; ``None``: the target's default
            (:data:`calib.targets.DEFAULT_METHODS`).
        provenance: what the tiles are (data, seed, ...), recorded in ``model.json``.
        gate: acceptance limits.
        target: ``tensorrt`` (``model.int8.onnx``, symmetric INT8, precision ``int8``) or ``cpu``
            (``model.int8cpu.onnx``, UINT8 activations for ONNX Runtime CPU, precision ``int8_cpu``).

    Returns:
        Path of the written file. Raises :class:`calib.check.CalibrationError` when rejected.
    """
    method = method or DEFAULT_METHODS[target]
    bundle = load_bundle(bundle_dir)
    fp32_path = bundle.model_path("fp32")
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / TARGET_FILES[target]
        settings = quantize_int8(fp32_path, candidate, calibration.tiles, method, target)
        if target == "tensorrt":
            require_tensorrt_rules(candidate, settings["float_nodes"])
        v = bundle.vessel_index
        fp32, int8 = (session_predictor(open_session(path), v, str(path)) for path in (fp32_path, candidate))
        check = accuracy_gate(fp32, int8, heldout.tiles, heldout.fov, gate)
        path = bundle.root / TARGET_FILES[target]
        write_bytes(path, candidate.read_bytes())
    bundle.register_file(
        TARGET_PRECISION[target],
        path,
        source_sha256=bundle.meta["files"]["fp32"]["sha256"],
        quantization=settings,
        calibration={
            **(provenance or {}),
            "method": method,
            "count": len(calibration),
            "regions": calibration.region_counts(),
            "images": sorted({o["image"] for o in calibration.origins}),
        },
        heldout_check={"tiles": len(heldout), "images": sorted({o["image"] for o in heldout.origins}), **check},
    )
    bundle.save()
    return path
