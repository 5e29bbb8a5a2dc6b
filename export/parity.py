"""Parity: every backend/precision of a bundle against the PyTorch FP32 checkpoint it came from.

Compared on the raw tile outputs and on stitched whole images: max/mean |Δp|, agreement of the
thresholded masks (inside the FOV), and — when labels exist — the change in pooled MIoU and F1
(in points, i.e. ×100). Each backend is held to the tolerance of its precision.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fundus_vessels.export.engine import build_engine
from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.backends import Backend, BackendError, create_backend
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, load_bundle
from fundus_vessels.runtime.datasets import drive_files
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.inference import TilePredictor, predict_plane
from fundus_vessels.runtime.metrics import SegmentationEvaluator
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

PARITY_JSON = "parity.json"


@dataclass(frozen=True)
class Tolerance:
    """Limits vs PyTorch FP32; ``None`` means not checked. Points are ×100 (0.1 point = 0.001)."""

    max_abs: float | None = None
    agreement: float | None = None
    miou_points: float | None = None
    f1_points: float | None = None


TOLERANCES = {
    "fp32": Tolerance(max_abs=1e-4, agreement=0.9999),
    "fp32_static": Tolerance(max_abs=1e-4, agreement=0.9999),
    "fp16": Tolerance(max_abs=2e-2, agreement=0.999, miou_points=0.1),
    "int8": Tolerance(agreement=0.995, miou_points=0.5, f1_points=0.5),
}


@dataclass
class Plane:
    """One preprocessed input plane with its truth and FOV (truth ``None`` for synthetic inputs)."""

    name: str
    plane: np.ndarray
    truth: np.ndarray | None
    fov: np.ndarray


@dataclass
class Run:
    """A backend's outputs on all planes: raw tiles (concatenated) and stitched probabilities."""

    tiles: np.ndarray
    images: list[np.ndarray]


def drive_planes(bundle: Bundle, data_root: str | os.PathLike, count: int) -> list[Plane]:
    """The first ``count`` DRIVE test images, preprocessed as the bundle says."""
    planes = []
    for sample in drive_files(data_root, "test")[:count]:
        photo, truth, fov = sample.load()
        planes.append(Plane(sample.name, preprocess(photo, bundle.preprocess), truth, fov))
    return planes


def synthetic_planes(bundle: Bundle, count: int, size: int = 320) -> list[Plane]:
    """Code-drawn fundus photographs with known vessels and FOV, for data-free checks."""
    planes = []
    for seed in range(count):
        fundus = make_synthetic_fundus(size, size, seed=seed)
        plane = preprocess(fundus.image_rgb, bundle.preprocess)
        planes.append(Plane(f"synthetic/{seed}", plane, fundus.vessels, fundus.fov))
    return planes


def run_backend(predict: TilePredictor, planes: list[Plane], bundle: Bundle, batch: int) -> Run:
    """Predict every plane, keeping the raw tile outputs as well as the stitched maps."""
    tiles: list[np.ndarray] = []

    def recording(x: np.ndarray) -> np.ndarray:
        y = np.asarray(predict(x), dtype=np.float32)
        tiles.append(y)
        return y

    images = [predict_plane(p.plane, recording, bundle.tile, bundle.overlap, batch) for p in planes]
    return Run(np.concatenate(tiles), images)


def pooled_scores(run: Run, planes: list[Plane], threshold: float) -> dict[str, float] | None:
    """Pooled FOV scores of a run (``None`` without labels)."""
    if any(p.truth is None for p in planes):
        return None
    evaluator = SegmentationEvaluator(threshold)
    for p, prob in zip(planes, run.images, strict=True):
        evaluator.add(p.name, prob, p.truth, p.fov)
    return evaluator.summary()["pooled"]


def compare(reference: Run, candidate: Run, planes: list[Plane], threshold: float) -> dict:
    """|Δp| on tiles and images, FOV mask agreement, and MIoU/F1 deltas in points."""
    tile_diff = np.abs(candidate.tiles - reference.tiles)
    image_diff = np.concatenate(
        [np.abs(c - r)[p.fov] for c, r, p in zip(candidate.images, reference.images, planes, strict=True)]
    )
    agree = sum(
        int(((c >= threshold) == (r >= threshold))[p.fov].sum())
        for c, r, p in zip(candidate.images, reference.images, planes, strict=True)
    )
    result = {
        "tile_max_abs_diff": float(tile_diff.max()),
        "tile_mean_abs_diff": float(tile_diff.mean()),
        "image_max_abs_diff": float(image_diff.max()),
        "image_mean_abs_diff": float(image_diff.mean()),
        "mask_agreement": agree / image_diff.size,
    }
    ref_scores, cand_scores = pooled_scores(reference, planes, threshold), pooled_scores(candidate, planes, threshold)
    if ref_scores is not None and cand_scores is not None:
        for key in ("miou", "f1"):
            result[key] = cand_scores[key]
            result[f"{key}_delta_points"] = 100.0 * (cand_scores[key] - ref_scores[key])
    return result


def failures(result: dict, tol: Tolerance) -> list[str]:
    """Which limits of ``tol`` a comparison breaks (empty: within tolerance)."""
    broken = []
    worst = max(result["tile_max_abs_diff"], result["image_max_abs_diff"])
    if tol.max_abs is not None and not worst <= tol.max_abs:
        broken.append(f"max|Δp| {worst:.3g} > {tol.max_abs:g}")
    if tol.agreement is not None and not result["mask_agreement"] >= tol.agreement:
        broken.append(f"agreement {100 * result['mask_agreement']:.4f}% < {100 * tol.agreement:g}%")
    for key, limit in (("miou", tol.miou_points), ("f1", tol.f1_points)):
        delta = result.get(f"{key}_delta_points")
        if limit is not None and delta is not None and not abs(delta) <= limit:
            broken.append(f"{key.upper()} Δ {delta:+.3f} points > {limit:g}")
    return broken


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
    planes = drive_planes(bundle, data_root, images) if data_root else synthetic_planes(bundle, images)
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
