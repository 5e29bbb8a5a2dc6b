"""Phantoms with analytic answers for the vessel measurements: bands of exact width along curves."""

from __future__ import annotations

import itertools
import math

import numpy as np


def band(shape: tuple[int, int], points: np.ndarray, width: float) -> np.ndarray:
    """Pixels whose centre lies closer than ``width / 2`` to the polyline ``points`` ((n, 2) row/col)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    best = np.full(shape, np.inf)
    pad = width / 2.0 + 2.0
    for a, b in itertools.pairwise(points):
        r0, r1 = int(max(min(a[0], b[0]) - pad, 0)), int(min(max(a[0], b[0]) + pad + 1, shape[0]))
        c0, c1 = int(max(min(a[1], b[1]) - pad, 0)), int(min(max(a[1], b[1]) + pad + 1, shape[1]))
        pr, pc = rows[r0:r1, c0:c1] - a[0], cols[r0:r1, c0:c1] - a[1]
        d = b - a
        t = np.clip((pr * d[0] + pc * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
        dist = np.hypot(pr - t * d[0], pc - t * d[1])
        np.minimum(best[r0:r1, c0:c1], dist, out=best[r0:r1, c0:c1])
    return best < width / 2.0


def line(start: tuple[float, float], angle_deg: float, length: float, samples: int = 2) -> np.ndarray:
    a = math.radians(angle_deg)
    t = np.linspace(0.0, length, samples)
    return np.stack([start[0] + t * math.sin(a), start[1] + t * math.cos(a)], axis=1)


def arc(centre: tuple[float, float], radius: float, angle_rad: float, samples: int = 400) -> np.ndarray:
    t = np.linspace(-angle_rad / 2.0, angle_rad / 2.0, samples)
    return np.stack([centre[0] - radius * np.cos(t), centre[1] + radius * np.sin(t)], axis=1)


def sinusoid(start: tuple[float, float], amplitude: float, wavelength: float, periods: float, samples: int = 2000):
    x = np.linspace(0.0, wavelength * periods, samples)
    return np.stack([start[0] + amplitude * np.sin(2.0 * math.pi * x / wavelength), start[1] + x], axis=1)


def polyline_length(points: np.ndarray) -> float:
    return float(np.hypot(*np.diff(points, axis=0).T).sum())


def sierpinski_carpet(level: int) -> np.ndarray:
    """The carpet of side ``3**level``: dimension log 8 / log 3 = 1.8928."""
    carpet = np.ones((1, 1), dtype=bool)
    for _ in range(level):
        hole = np.zeros_like(carpet)
        carpet = np.block([[carpet, carpet, carpet], [carpet, hole, carpet], [carpet, carpet, carpet]])
    return carpet


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot(rows - centre[0], cols - centre[1]) <= radius
