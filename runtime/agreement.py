"""Agreement of a backend's vessel probabilities with a reference's, held to a tolerance per precision.

One implementation for ``fundus-export parity`` (every backend vs the PyTorch checkpoint, on DRIVE
or synthetic images) and ``fundus-infer --self-test`` (every backend on a device vs ONNX Runtime
CPU FP32): raw tile outputs and stitched images, max/mean |Δp|, agreement of the thresholded
masks inside the FOV, and the change in pooled MIoU and F1 in points (×100) when labels exist.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from fundus_vessels.runtime.bundle import Bundle
from fundus_vessels.runtime.datasets import drive_files
from fundus_vessels.runtime.inference import TilePredictor, predict_plane
from fundus_vessels.runtime.metrics import SegmentationEvaluator
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


@dataclass(frozen=True)
class Tolerance:
    """Limits vs PyTorch FP32; ``None`` means not checked. Points are ×100 (0.1 point = 0.001)."""

    max_abs: float | None = None
    agreement: float | None = None
    miou_points: float | None = None
    f1_points: float | None = None

    def to_json(self) -> dict[str, float]:
        """The limits that are checked, in field order (``tolerance`` in parity.json and self-test.json)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


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


def drive_test_planes(bundle: Bundle, data_root: str | os.PathLike, count: int) -> list[Plane]:
    """The first ``count`` DRIVE test images (01, 02, …), preprocessed as the bundle says, with truth and FOV."""
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


def agreeing_pixels(
    reference: np.ndarray, candidate: np.ndarray, region: np.ndarray, threshold: float
) -> tuple[int, int]:
    """``(pixels of region where both masks agree, pixels of region)`` for two probability maps at ``threshold``."""
    same = (candidate >= threshold) == (reference >= threshold)
    return int(same[region].sum()), int(np.count_nonzero(region))


class Judged:
    """Mixin of a result held to a :class:`Tolerance`: it passed when no check failed (``failures`` empty)."""

    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Agreement:
    """A candidate's outputs vs a reference's: |Δp| on tiles and images, FOV mask agreement, and — with labels —
    the candidate's pooled MIoU/F1 and their change in points (all four ``None`` without labels)."""

    tile_max_abs_diff: float
    tile_mean_abs_diff: float
    image_max_abs_diff: float
    image_mean_abs_diff: float
    mask_agreement: float
    miou: float | None = None
    miou_delta_points: float | None = None
    f1: float | None = None
    f1_delta_points: float | None = None

    @property
    def worst_abs_diff(self) -> float:
        """The largest |Δp| anywhere, tiles or images."""
        return max(self.tile_max_abs_diff, self.image_max_abs_diff)

    def to_json(self) -> dict[str, Any]:
        """The keys every parity.json backend and self-test.json result starts with (scores only with labels)."""
        data = {
            "tile_max_abs_diff": self.tile_max_abs_diff,
            "tile_mean_abs_diff": self.tile_mean_abs_diff,
            "image_max_abs_diff": self.image_max_abs_diff,
            "image_mean_abs_diff": self.image_mean_abs_diff,
            "mask_agreement": self.mask_agreement,
        }
        scores = {
            "miou": self.miou,
            "miou_delta_points": self.miou_delta_points,
            "f1": self.f1,
            "f1_delta_points": self.f1_delta_points,
        }
        return data | {k: v for k, v in scores.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Agreement:
        """The inverse of :meth:`to_json` (a score written as null, i.e. NaN, reads back as NaN)."""
        names = [f.name for f in fields(cls)]
        return cls(**{k: float("nan") if data[k] is None else data[k] for k in names if k in data})


def compare(reference: Run, candidate: Run, planes: list[Plane], threshold: float) -> Agreement:
    """|Δp| on tiles and images, FOV mask agreement, and MIoU/F1 deltas in points."""
    tile_diff = np.abs(candidate.tiles - reference.tiles)
    image_diff = np.concatenate(
        [np.abs(c - r)[p.fov] for c, r, p in zip(candidate.images, reference.images, planes, strict=True)]
    )
    pairs = zip(candidate.images, reference.images, planes, strict=True)
    counts = [agreeing_pixels(r, c, p.fov, threshold) for c, r, p in pairs]
    scores: dict[str, float] = {}
    ref_scores, cand_scores = pooled_scores(reference, planes, threshold), pooled_scores(candidate, planes, threshold)
    if ref_scores is not None and cand_scores is not None:
        for key in ("miou", "f1"):
            scores[key] = cand_scores[key]
            scores[f"{key}_delta_points"] = 100.0 * (cand_scores[key] - ref_scores[key])
    return Agreement(
        tile_max_abs_diff=float(tile_diff.max()),
        tile_mean_abs_diff=float(tile_diff.mean()),
        image_max_abs_diff=float(image_diff.max()),
        image_mean_abs_diff=float(image_diff.mean()),
        mask_agreement=sum(same for same, _ in counts) / sum(n for _, n in counts),
        **scores,
    )


def failures(result: Agreement, tol: Tolerance) -> list[str]:
    """Which limits of ``tol`` a comparison breaks (empty: within tolerance)."""
    broken = []
    worst = result.worst_abs_diff
    if tol.max_abs is not None and not worst <= tol.max_abs:
        broken.append(f"max|Δp| {worst:.3g} > {tol.max_abs:g}")
    if tol.agreement is not None and not result.mask_agreement >= tol.agreement:
        broken.append(f"agreement {100 * result.mask_agreement:.4f}% < {100 * tol.agreement:g}%")
    for key, delta, limit in (
        ("miou", result.miou_delta_points, tol.miou_points),
        ("f1", result.f1_delta_points, tol.f1_points),
    ):
        if limit is not None and delta is not None and not abs(delta) <= limit:
            broken.append(f"{key.upper()} Δ {delta:+.3f} points > {limit:g}")
    return broken
