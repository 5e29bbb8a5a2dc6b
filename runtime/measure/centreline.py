"""A segment's centreline as a smooth curve: arc length, chord, turning, tortuosity.

The pixel chain is a staircase (a straight line at 22.5° measures 8 % long by pixel steps), so
lengths and angles are taken on the chain smoothed by a Gaussian of ``sigma`` px along it, with
the ends held fixed (odd reflection about each end before filtering). ``sigma = max(1, D / 100)``
with ``D`` the FOV diameter (5.4 px on DRIVE), so the smoothing scales with the image.

- arc length ``L`` = length of the smoothed polyline; chord ``C`` = distance between its ends;
  distance tortuosity ``tau = L / C`` (1 for a straight segment; loops have no chord);
- total turning ``T`` = sum of |heading change| of the smoothed curve resampled every ``step``
  (``step = max(2, D / 100)`` px along it), in radians; mean curvature ``kappa = T / L`` rad/px
  (``1 / R`` on an arc of radius ``R``; 0 on a straight line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

SIGMA_PER_DFOV = 1.0 / 100.0
STEP_PER_DFOV = 1.0 / 100.0
MIN_SIGMA_PX = 1.0
MIN_STEP_PX = 2.0


@dataclass(frozen=True)
class Shape:
    """Scale-free description of one segment's curve (lengths in px, angles in rad)."""

    arc_px: float
    chord_px: float
    turning_rad: float

    @property
    def tortuosity(self) -> float:
        """``arc / chord`` (nan for a closed curve)."""
        return self.arc_px / self.chord_px if self.chord_px > 0 else math.nan

    @property
    def curvature_per_px(self) -> float:
        """Mean absolute curvature ``turning / arc`` in rad/px (nan for a zero-length curve)."""
        return self.turning_rad / self.arc_px if self.arc_px > 0 else math.nan


def smooth(points: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed copy of an ordered (n, 2) point chain, both end points kept in place."""
    points = points.astype(np.float64)
    if len(points) < 3 or sigma <= 0:
        return points
    pad = min(math.ceil(4.0 * sigma), len(points) - 1)
    head = 2.0 * points[0] - points[pad:0:-1]  # odd reflection: the end stays put, lines stay straight
    tail = 2.0 * points[-1] - points[-2 : -pad - 2 : -1]
    extended = np.concatenate([head, points, tail])
    return gaussian_filter1d(extended, sigma, axis=0, mode="nearest", truncate=4.0)[pad:-pad]


def arc_positions(curve: np.ndarray) -> np.ndarray:
    """Cumulative length along a polyline, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(curve, axis=0).T))])


def point_at(curve: np.ndarray, along: np.ndarray, distance: float) -> np.ndarray:
    """The point ``distance`` px along the polyline (clamped to its ends)."""
    distance = min(max(distance, 0.0), along[-1])
    return np.array([np.interp(distance, along, curve[:, axis]) for axis in (0, 1)])


def total_turning(curve: np.ndarray, along: np.ndarray, step: float) -> float:
    """Sum of |heading change| (rad) of ``curve`` resampled every ``step`` along its length."""
    if along[-1] < 2.0 * step:
        return 0.0
    samples = np.linspace(0.0, along[-1], int(along[-1] // step) + 1)
    resampled = np.stack([np.interp(samples, along, curve[:, axis]) for axis in (0, 1)], axis=1)
    delta = np.diff(resampled, axis=0)
    heading = np.arctan2(delta[:, 0], delta[:, 1])
    turn = np.angle(np.exp(1j * np.diff(heading)))
    return float(np.abs(turn).sum())


def scales(fov_diameter: float) -> tuple[float, float]:
    """``(sigma, step)`` in px for an image whose FOV diameter is ``fov_diameter`` px."""
    return max(MIN_SIGMA_PX, fov_diameter * SIGMA_PER_DFOV), max(MIN_STEP_PX, fov_diameter * STEP_PER_DFOV)


def describe(pixels: np.ndarray, fov_diameter: float) -> tuple[Shape, np.ndarray, np.ndarray]:
    """Shape of an ordered pixel chain; also its smoothed curve and the arc positions along it."""
    sigma, step = scales(fov_diameter)
    curve = smooth(pixels, sigma)
    along = arc_positions(curve)
    chord = float(np.hypot(*(curve[-1] - curve[0])))
    return Shape(float(along[-1]), chord, total_turning(curve, along, step)), curve, along
