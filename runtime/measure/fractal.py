"""Box-counting (Minkowski-Bouligand) dimension of a binary image.

What is counted: ``N(s)``, the number of square boxes of side ``s`` px, on a grid anchored at the
top-left corner ``(r0, c0)`` of the FOV's bounding box, that overlap at least one foreground pixel,
each pixel being the unit square ``[r, r + 1) x [c, c + 1)`` (so a pixel straddling a box edge
counts in both boxes, and a map upscaled by pixel repetition gives the same counts). Box sizes are fractions
of the FOV diameter ``D``, so images of any resolution are counted at the same relative scales:
``s_k = D * 2**(-k/2)`` for ``k = 6 .. 16`` (``D/8`` down to ``D/256``, 11 sizes half an octave
apart); sizes under 2 px are dropped (fewer than 4 left: no dimension). The dimension is the
least-squares slope of ``log N(s)`` against ``log(1 / s)`` over all sizes kept.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

HALF_OCTAVES = np.arange(6, 17)
MIN_BOX_PX = 2.0
MIN_SIZES = 4


def box_sizes(fov_diameter: float) -> np.ndarray:
    """The box sides (px) used for an image of FOV diameter ``fov_diameter``, largest first."""
    sizes = fov_diameter * 2.0 ** (-HALF_OCTAVES / 2.0)
    return sizes[sizes >= MIN_BOX_PX]


def _box_edges(count: int, size: float, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ranges ``[lo, hi)`` whose unit squares overlap boxes ``0 .. count-1`` of side ``size``."""
    index = np.arange(count)
    return np.floor(index * size).astype(np.int64), np.minimum(np.ceil((index + 1) * size).astype(np.int64), limit)


def box_counts(image: np.ndarray, origin: tuple[int, int], sizes: np.ndarray) -> np.ndarray:
    """``N(s)`` for each size: boxes overlapping at least one true pixel of ``image`` (grid at ``origin``).

    Each box's pixel count comes from the integral image (four look-ups per box).
    """
    region = np.ascontiguousarray(image[origin[0] :, origin[1] :], dtype=np.uint8)
    height, width = region.shape
    integral = cv2.integral(region).astype(np.int64)
    counts = []
    for size in sizes:
        r_lo, r_hi = _box_edges(int(np.ceil(height / size)), size, height)
        c_lo, c_hi = _box_edges(int(np.ceil(width / size)), size, width)
        inside = (
            integral[np.ix_(r_hi, c_hi)]
            - integral[np.ix_(r_lo, c_hi)]
            - integral[np.ix_(r_hi, c_lo)]
            + integral[np.ix_(r_lo, c_lo)]
        )
        counts.append(int((inside > 0).sum()))
    return np.asarray(counts)


def box_counting_dimension(image: np.ndarray, origin: tuple[int, int], fov_diameter: float) -> float:
    """Box-counting dimension of the true pixels of ``image`` (nan when empty or too small)."""
    sizes = box_sizes(fov_diameter)
    if not image.any() or len(sizes) < MIN_SIZES:
        return math.nan
    counts = box_counts(image, origin, sizes)
    slope, _ = np.polyfit(np.log(1.0 / sizes), np.log(counts), 1)
    return float(slope)
