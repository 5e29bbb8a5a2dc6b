"""The accuracy gate: an INT8 model ships only if it agrees with FP32 on held-out tiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fundus_vessels.runtime.agreement import agreeing_pixels
from fundus_vessels.runtime.inference import TilePredictor


class CalibrationError(RuntimeError):
    """The INT8 model is too far from FP32 (bad calibration data or method): not shipped."""


@dataclass(frozen=True)
class Gate:
    """Minimum agreement of thresholded masks (inside the FOV) and maximum mean |Δp| vs FP32."""

    min_agreement: float = 0.995
    max_mean_abs_diff: float = 0.02
    threshold: float = 0.5


DEFAULT_GATE = Gate()


def predict_all(predict: TilePredictor, tiles: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([predict(tiles[i : i + batch]) for i in range(0, len(tiles), batch)])


def compare_tiles(fp32: np.ndarray, int8: np.ndarray, fov: np.ndarray, threshold: float) -> dict[str, float]:
    """Mask agreement inside the FOV and |Δp| statistics of two (n, t, t) probability stacks."""
    region = fov.astype(bool) if fov.any() else np.ones(fov.shape, bool)
    diff = np.abs(int8 - fp32)[region]
    same, count = agreeing_pixels(fp32, int8, region, threshold)
    return {
        "mask_agreement": same / count,
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
    }


def accuracy_gate(
    fp32: TilePredictor, int8: TilePredictor, tiles: np.ndarray, fov: np.ndarray, gate: Gate = DEFAULT_GATE
) -> dict[str, float]:
    """Compare the models on held-out ``tiles``; raise :class:`CalibrationError` outside ``gate``."""
    result = compare_tiles(predict_all(fp32, tiles), predict_all(int8, tiles), fov, gate.threshold)
    problems = []
    if not result["mask_agreement"] >= gate.min_agreement:
        problems.append(f"mask agreement {100 * result['mask_agreement']:.2f}% < {100 * gate.min_agreement:g}%")
    if not result["mean_abs_diff"] <= gate.max_mean_abs_diff:
        problems.append(f"mean |Δp| {result['mean_abs_diff']:.4f} > {gate.max_mean_abs_diff:g}")
    if problems:
        raise CalibrationError(
            f"INT8 model rejected on {len(tiles)} held-out tiles: {'; '.join(problems)} "
            "(calibration data unrepresentative or method unsuitable; nothing written to the bundle)"
        )
    return result
