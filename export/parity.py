"""Parity: every backend/precision of a bundle against the PyTorch FP32 checkpoint it came from.

Compared on the raw tile outputs and on stitched whole images: max/mean |Δp|, agreement of the
thresholded masks (inside the FOV), and — when labels exist — the change in pooled MIoU and F1
(in points, i.e. ×100). Each backend is held to the tolerance of its precision.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from fundus_vessels.export.engine import build_engine
from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.agreement import (
    TOLERANCES,
    compare,
    drive_test_planes,
    failures,
    pooled_scores,
    run_backend,
    synthetic_planes,
)
from fundus_vessels.runtime.backends import Backend, BackendError, create_backend
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, load_bundle
from fundus_vessels.runtime.imageio import write_json

PARITY_JSON = "parity.json"


def backends_here(bundle: Bundle, checkpoint: str | os.PathLike) -> tuple[dict[str, Backend], dict[str, str]]:
    """``({name: backend}, {skipped name: reason})`` for everything this machine can run."""
    wanted = [("ort", "fp32"), ("opencv", "fp32"), ("ort", "fp16"), ("ort", "int8"), ("trt", "fp16"), ("trt", "int8")]
    found: dict[str, Backend] = {}
    skipped: dict[str, str] = {}
    for kind, precision in wanted:
        name = f"{kind}_{precision}"
        source = "fp32_static" if kind == "opencv" else precision
        if not bundle.has(source):
            skipped[name] = f"{PRECISION_FILES[source]} not in bundle"
            continue
        try:
            if kind == "trt":
                build_engine(bundle.root, precision)
            found[name] = create_backend(kind, bundle, precision, checkpoint=checkpoint)
        except (ExportError, BackendError) as exc:  # no TensorRT/GPU here: the rest still stands
            skipped[name] = str(exc)
    return found, skipped


def run_parity(
    bundle_dir: str | os.PathLike,
    checkpoint: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    images: int = 2,
    batch: int = 8,
) -> dict:
    """Compare every available backend with PyTorch; write and return ``parity.json``'s content."""
    bundle = load_bundle(bundle_dir)
    planes = drive_test_planes(bundle, data_root, images) if data_root else synthetic_planes(bundle, images)
    torch_backend = create_backend("torch", bundle, "fp32", checkpoint=checkpoint)
    reference = run_backend(torch_backend.predict, planes, bundle, batch)
    found, skipped = backends_here(bundle, checkpoint)
    backends = {}
    for name, backend in found.items():
        result = compare(reference, run_backend(backend.predict, planes, bundle, batch), planes, bundle.threshold)
        precision = "fp32_static" if backend.name == "opencv" else backend.precision
        tol = TOLERANCES[precision]
        broken = failures(result, tol)
        backends[name] = {
            "precision": precision,
            **result,
            "tolerance": {k: v for k, v in asdict(tol).items() if v is not None},
            "pass": not broken,
            "failures": broken,
        }
    report = {
        "reference": "pytorch fp32 (checkpoint)",
        "checkpoint": Path(checkpoint).name,
        "inputs": {
            "source": "DRIVE test" if data_root else "synthetic fundus (runtime.synthetic)",
            "images": [p.name for p in planes],
            "tiles": int(reference.tiles.shape[0]),
            "mask_region": "fov",
        },
        "reference_scores": pooled_scores(reference, planes, bundle.threshold) or {},
        "backends": backends,
        "skipped": skipped,
        "pass": all(b["pass"] for b in backends.values()),
    }
    write_json(bundle.root / PARITY_JSON, report)
    return report


def format_table(report: dict) -> str:
    """The parity table as text, one row per backend."""
    header = (
        f"{'backend':<20} {'tile max|Δp|':>13} {'img max|Δp|':>12} {'mean|Δp|':>10} {'agree %':>9} "
        f"{'ΔMIoU':>7} {'ΔF1':>7}  result"
    )
    lines = [header, "-" * len(header)]
    for name, b in report["backends"].items():
        d_miou = f"{b['miou_delta_points']:+.3f}" if "miou_delta_points" in b else "-"
        d_f1 = f"{b['f1_delta_points']:+.3f}" if "f1_delta_points" in b else "-"
        verdict = "ok" if b["pass"] else "FAIL: " + "; ".join(b["failures"])
        lines.append(
            f"{name:<20} {b['tile_max_abs_diff']:>13.3g} {b['image_max_abs_diff']:>12.3g} "
            f"{b['image_mean_abs_diff']:>10.2g} {100 * b['mask_agreement']:>9.4f} {d_miou:>7} {d_f1:>7}  {verdict}"
        )
    lines += [f"{name:<20} skipped: {why}" for name, why in report["skipped"].items()]
    return "\n".join(lines)
