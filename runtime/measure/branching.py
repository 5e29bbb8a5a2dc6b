"""Branching angles at bifurcations (junctions where exactly three segments meet).

Each of the three segments leaves the junction along the unit vector between two points of its
smoothed centreline, from ``r1 = w_j + 2`` px to ``r2 = r1 + D / 50`` px along it from the
junction (``w_j`` the width map at the junction's centre, so both points lie outside the
junction's own disc; ``D`` the FOV diameter), both clamped to the segment's length. The *parent* is the widest
of the three (largest median calibre; ties: the longest); the branching angle is the angle
between the two daughters' vectors, in degrees (0-180).
"""

from __future__ import annotations

import math

import numpy as np

from fundus_vessels.runtime.measure.centreline import point_at
from fundus_vessels.runtime.measure.skeleton import Junction

REACH_PER_DFOV = 1.0 / 50.0
REACH_BEYOND_JUNCTION_PX = 2.0


def leaving_direction(curve: np.ndarray, along: np.ndarray, at_start: bool, near: float, far: float):
    """Unit vector from the point ``near`` px to the point ``far`` px into the segment from the given end."""
    points = [point_at(curve, along, d if at_start else along[-1] - d) for d in (near, far)]
    vector = points[1] - points[0]
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 0 else None


def branching_angle(
    junction: Junction,
    curves: list[tuple[np.ndarray, np.ndarray]],
    calibres: list[float],
    lengths: list[float],
    junction_width: float,
    fov_diameter: float,
) -> float:
    """Angle (degrees) between the daughters at a bifurcation; nan elsewhere or when undefined."""
    if len(junction.ends) != 3:
        return math.nan
    near = junction_width + REACH_BEYOND_JUNCTION_PX
    far = near + fov_diameter * REACH_PER_DFOV
    order = sorted(junction.ends, key=lambda end: (calibres[end[0]], lengths[end[0]]), reverse=True)
    daughters = []
    for segment, at_start in order[1:]:
        curve, along = curves[segment]
        direction = leaving_direction(curve, along, at_start, near, far)
        if direction is None:
            return math.nan
        daughters.append(direction)
    cosine = float(np.clip(np.dot(daughters[0], daughters[1]), -1.0, 1.0))
    return math.degrees(math.acos(cosine))
