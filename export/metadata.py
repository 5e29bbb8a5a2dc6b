"""``model.json`` contents derived from a checkpoint: contract, provenance and tool versions."""

from __future__ import annotations

import math

from torch import nn

from fundus_vessels.runtime.bundle_schema import BundleSpec, InputSpec, OutputSpec, TilingSpec
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train.checkpoint import checkpoint_scale

INTENDED_USE = "research and screening support; not a diagnostic device"
CLASSES = ["background", "vessel"]
VESSEL_INDEX = 1
THRESHOLD = 0.5
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def json_safe(value: object) -> object:
    """Copy of ``value`` without JSON ``null`` or NaN (OpenCV's FileStorage rejects both).

    ``None`` entries of a dict are dropped; ``None`` in a list and non-finite floats become strings.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return ["none" if v is None else json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def tool_versions(opset: int) -> dict[str, str | int]:
    """Versions of every tool that shaped the exported files."""
    import cv2
    import onnx
    import onnxruntime
    import onnxslim
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxslim": onnxslim.__version__,
        "opencv": cv2.__version__,
        "opset": opset,
    }


CONTRACT_SECTIONS = ("input", "preprocess", "tiling", "scale", "output", "threshold")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (all of them: an exported model has no frozen/trainable split)."""
    return sum(p.numel() for p in model.parameters())


def checkpoint_contract(ckpt: dict, source: object) -> BundleSpec:
    """The ``model.json`` contract of a checkpoint, checked by the loader's rules (``source`` named in errors)."""
    tiling = ckpt["tiling"]
    return BundleSpec(
        input=InputSpec(INPUT_NAME),
        preprocess=PreprocessConfig.from_dict(ckpt["preprocess"]),
        tiling=TilingSpec(int(tiling["tile"]), int(tiling["overlap"])),
        output=OutputSpec(OUTPUT_NAME, tuple(CLASSES), VESSEL_INDEX),
        threshold=float(ckpt.get("threshold", THRESHOLD)),  # chosen on validation by train.threshold
        files={},
        # the FOV diameter training resampled every photograph to (fundus-train --scale-reference)
        scale=checkpoint_scale(ckpt),
    ).checked(source)


def bundle_meta(ckpt: dict, model: nn.Module, name: str, opset: int, source: object = "checkpoint") -> dict:
    """Everything of ``model.json`` except the ``files`` entries (added as each model file is written)."""
    contract = checkpoint_contract(ckpt, source).contract()
    metrics = {key: ckpt[key] for key in ("val_metrics", "best") if key in ckpt}
    meta = {
        "format": contract["format"],
        "name": name,
        "intended_use": INTENDED_USE,
        **{key: contract[key] for key in CONTRACT_SECTIONS if key in contract},
        "architecture": {**ckpt["model_spec"], "parameters": count_parameters(model)},
        "training": {"config": ckpt.get("config", {}), "epoch": ckpt.get("epoch"), "seed": ckpt.get("seed")},
        "metrics": {"source": "checkpoint (validation split)", **metrics} if metrics else {},
        "versions": tool_versions(opset),
        "files": {},
    }
    return json_safe(meta)
