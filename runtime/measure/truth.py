"""Known answers of the synthetic fundus (``runtime.synthetic``): figures of the tree it was drawn with.

Centrelines are the drawn polylines clipped to the FOV (points outside dropped); lengths add up
over branches; the calibre is the width (rows) of a horizontal stroke drawn the same way with the
branch's thickness (OpenCV's anti-aliased strokes thresholded at 128 are wider than the nominal
thickness), weighted by the branch's length; the
tortuosity is arc / chord of each drawn polyline of at least the length the measurement uses
(:func:`..analysis.min_tortuosity_length`), length-weighted.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from fundus_vessels.runtime.measure.analysis import min_tortuosity_length, weighted_median
from fundus_vessels.runtime.measure.units import fov_diameter_px
from fundus_vessels.runtime.synthetic import SyntheticFundus


@functools.cache
def stroke_width(thickness: int) -> int:
    """Pixel rows of a long horizontal anti-aliased stroke of ``thickness``, as the synthetic draws it."""
    canvas = np.zeros((64, 64), dtype=np.uint8)
    cv2.polylines(canvas, [np.array([[4, 32], [60, 32]], np.int32)], False, 255, thickness, cv2.LINE_AA)
    return int((canvas[:, 32] >= 128).sum())


def drawn_tree_figures(fundus: SyntheticFundus) -> dict[str, float]:
    """``total_length_px``, ``calibre_median_px``, ``tortuosity_mean`` and ``vessel_density`` of the drawing."""
    height, width = fundus.fov.shape
    diameter = fov_diameter_px(int(fundus.fov.sum()))
    lengths, thickness, tau, tau_weight = [], [], [], []
    for branch in fundus.branches:
        x, y = branch.points[:, 0], branch.points[:, 1]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        inside[inside] = fundus.fov[y[inside].astype(int), x[inside].astype(int)]
        points = branch.points[inside]
        if len(points) < 2:
            continue
        arc = float(np.hypot(*np.diff(points, axis=0).T).sum())
        lengths.append(arc)
        thickness.append(stroke_width(branch.thickness))
        chord = float(np.hypot(*(points[-1] - points[0])))
        if inside.all() and chord > 0 and arc >= min_tortuosity_length(diameter):
            tau.append(arc / chord)
            tau_weight.append(arc)
    tau_arr, weight = np.asarray(tau), np.asarray(tau_weight)
    return {
        "vessel_density": float(fundus.vessels.sum() / fundus.fov.sum()),
        "total_length_px": float(sum(lengths)),
        "calibre_median_px": weighted_median(np.asarray(thickness, dtype=np.float64), np.asarray(lengths)),
        "tortuosity_mean": float((tau_arr * weight).sum() / weight.sum()) if len(weight) else float("nan"),
    }
