"""Parity: every backend/precision of a bundle against the PyTorch FP32 checkpoint it came from.

Compared on the raw tile outputs and on stitched whole images: max/mean |Δp|, agreement of the
thresholded masks (inside the FOV), and — when labels exist — the change in pooled MIoU and F1
(in points, i.e. ×100). Each backend is held to the tolerance of its precision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundus_vessels.export.engine import build_engine
from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.agreement import (
    TOLERANCES,
    Agreement,
    Judged,
    Tolerance,
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
REFERENCE = "pytorch fp32 (checkpoint)"
DRIVE_SOURCE = "DRIVE test"
SYNTHETIC_SOURCE = "synthetic fundus (runtime.synthetic)"


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


@dataclass(frozen=True)
class BackendParity(Judged):
    """One backend vs PyTorch: its agreement, held to the tolerance of ``precision`` (``fp32_static``: OpenCV DNN)."""

    precision: str
    agreement: Agreement
    tolerance: Tolerance
    failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """One entry of parity.json ``backends``."""
        return {
            "precision": self.precision,
            **self.agreement.to_json(),
            "tolerance": self.tolerance.to_json(),
            "pass": self.passed,
            "failures": list(self.failures),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackendParity:
        tolerance = Tolerance(**data["tolerance"])
        return cls(data["precision"], Agreement.from_json(data), tolerance, tuple(data["failures"]))


@dataclass(frozen=True)
class ParityReport:
    """``parity.json``: every backend run here against the PyTorch checkpoint, and those that could not run."""

    checkpoint: str  # the checkpoint's file name
    source: str  # what the inputs were (:data:`DRIVE_SOURCE` or :data:`SYNTHETIC_SOURCE`)
    images: tuple[str, ...]
    tiles: int  # tiles of all images, each run through every backend
    reference_scores: dict[str, float]  # PyTorch's pooled scores (empty without labels)
    backends: dict[str, BackendParity]
    skipped: dict[str, str]  # backend name -> why it did not run here
    reference: str = REFERENCE
    mask_region: str = "fov"

    @property
    def passed(self) -> bool:
        """Every backend that ran is within its tolerance."""
        return all(b.passed for b in self.backends.values())

    def to_json(self) -> dict[str, Any]:
        """parity.json's content: the one place its keys and their order are written."""
        return {
            "reference": self.reference,
            "checkpoint": self.checkpoint,
            "inputs": {
                "source": self.source,
                "images": list(self.images),
                "tiles": self.tiles,
                "mask_region": self.mask_region,
            },
            "reference_scores": dict(self.reference_scores),
            "backends": {name: b.to_json() for name, b in self.backends.items()},
            "skipped": dict(self.skipped),
            "pass": self.passed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParityReport:
        """A parity.json read back (``pass`` is recomputed from the backends' failures)."""
        inputs = data["inputs"]
        return cls(
            checkpoint=data["checkpoint"],
            source=inputs["source"],
            images=tuple(inputs["images"]),
            tiles=inputs["tiles"],
            reference_scores=dict(data["reference_scores"]),
            backends={name: BackendParity.from_json(b) for name, b in data["backends"].items()},
            skipped=dict(data["skipped"]),
            reference=data["reference"],
            mask_region=inputs["mask_region"],
        )


def run_parity(
    bundle_dir: str | os.PathLike,
    checkpoint: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    images: int = 2,
    batch: int = 8,
) -> ParityReport:
    """Compare every available backend with PyTorch; write ``parity.json`` and return its report."""
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
        backends[name] = BackendParity(precision, result, tol, tuple(failures(result, tol)))
    report = ParityReport(
        checkpoint=Path(checkpoint).name,
        source=DRIVE_SOURCE if data_root else SYNTHETIC_SOURCE,
        images=tuple(p.name for p in planes),
        tiles=int(reference.tiles.shape[0]),
        reference_scores=pooled_scores(reference, planes, bundle.threshold) or {},
        backends=backends,
        skipped=skipped,
    )
    write_json(bundle.root / PARITY_JSON, report.to_json())
    return report


def format_table(report: ParityReport) -> str:
    """The parity table as text, one row per backend."""
    header = (
        f"{'backend':<20} {'tile max|Δp|':>13} {'img max|Δp|':>12} {'mean|Δp|':>10} {'agree %':>9} "
        f"{'ΔMIoU':>7} {'ΔF1':>7}  result"
    )
    lines = [header, "-" * len(header)]
    for name, b in report.backends.items():
        a = b.agreement
        d_miou = "-" if a.miou_delta_points is None else f"{a.miou_delta_points:+.3f}"
        d_f1 = "-" if a.f1_delta_points is None else f"{a.f1_delta_points:+.3f}"
        verdict = "ok" if b.passed else "FAIL: " + "; ".join(b.failures)
        lines.append(
            f"{name:<20} {a.tile_max_abs_diff:>13.3g} {a.image_max_abs_diff:>12.3g} "
            f"{a.image_mean_abs_diff:>10.2g} {100 * a.mask_agreement:>9.4f} {d_miou:>7} {d_f1:>7}  {verdict}"
        )
    lines += [f"{name:<20} skipped: {why}" for name, why in report.skipped.items()]
    return "\n".join(lines)
