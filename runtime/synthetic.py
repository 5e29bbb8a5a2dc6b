"""A synthetic fundus photograph drawn by code, with its vessel tree and FOV known exactly.

Used by ``fundus-infer --demo``, the tests and the benchmark: no dataset needed. The picture is
a dark surround, an orange-red disc (the camera aperture) with vignetting, a bright optic disc,
a recursively branching vessel tree (tapering, darker than the background) and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND_RGB = (205.0, 95.0, 45.0)
OPTIC_DISC_RGB = (250.0, 215.0, 150.0)


@dataclass(frozen=True)
class Branch:
    """One drawn vessel segment: its centreline ``points`` (n, 2) x/y and line ``thickness`` in px."""

    points: np.ndarray
    thickness: int


@dataclass(frozen=True)
class SyntheticFundus:
    """``image_rgb`` (H, W, 3) uint8, ``vessels`` (H, W) bool inside the FOV, ``fov`` (H, W) bool;
    ``branches``: the drawn tree (centrelines before FOV clipping), for measurements' known answers."""

    image_rgb: np.ndarray
    vessels: np.ndarray
    fov: np.ndarray
    branches: tuple[Branch, ...] = ()


def _draw_branch(
    canvas: np.ndarray,
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    width: float,
    step: float,
    depth: int,
    drawn: list[Branch],
) -> None:
    """Draw one vessel segment as a wandering polyline, then recurse into two thinner children."""
    points = [start]
    position, heading = start.astype(np.float64), angle
    for _ in range(int(rng.integers(6, 12))):
        heading += rng.normal(0.0, 0.12)
        position = position + step * np.array([np.cos(heading), np.sin(heading)])
        points.append(position)
    cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 255, max(1, round(width)), cv2.LINE_AA)
    drawn.append(Branch(np.round(points).astype(np.float64), max(1, round(width))))
    child_width = width * rng.uniform(0.68, 0.82)
    if depth <= 0 or child_width < 0.9:
        return
    spread = rng.uniform(0.35, 0.75)
    for sign in (-1.0, 1.0):
        _draw_branch(canvas, rng, position, heading + sign * spread, child_width, step * 0.9, depth - 1, drawn)


def _vessel_tree(
    shape: tuple[int, int], disc: tuple[float, float], heading: float, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[Branch]]:
    """uint8 anti-aliased drawing of four arcades leaving the optic disc around ``heading``; its branches."""
    canvas = np.zeros(shape, dtype=np.uint8)
    start = np.array(disc)
    drawn: list[Branch] = []
    for offset in (-1.2, -0.6, 0.6, 1.2):
        angle = heading + offset + rng.normal(0.0, 0.1)
        _draw_branch(canvas, rng, start, angle, 6.0 * scale, 14.0 * scale, 6, drawn)
    return canvas, drawn


def make_synthetic_fundus(height: int = 584, width: int = 565, seed: int = 0) -> SyntheticFundus:
    """Draw a fundus photograph of ``height`` x ``width``; the same seed gives the same pixels."""
    if height < 8 or width < 8:
        raise ValueError(f"image too small for a synthetic fundus: {height}x{width}")
    rng = np.random.default_rng(seed)
    scale = min(height, width) / 565.0
    cy, cx = height / 2.0, width / 2.0
    radius = 0.47 * min(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.hypot(yy - cy, xx - cx) / radius
    fov = dist <= 1.0

    vignette = np.clip(1.0 - 0.45 * dist**2, 0.0, 1.0)
    image = np.asarray(BACKGROUND_RGB, np.float32) * vignette[..., None]
    disc = (cx + rng.choice([-1.0, 1.0]) * 0.55 * radius, cy + rng.normal(0.0, 0.05) * radius)
    disc_glow = np.exp(-((xx - disc[0]) ** 2 + (yy - disc[1]) ** 2) / (2.0 * (0.09 * radius) ** 2))
    image += (np.asarray(OPTIC_DISC_RGB, np.float32) - image) * disc_glow[..., None]

    # the tree fans out from the disc towards the centre of the image
    toward_centre = 0.0 if disc[0] < cx else np.pi
    tree, branches = _vessel_tree((height, width), disc, toward_centre, scale, rng)
    darkness = cv2.GaussianBlur(tree.astype(np.float32) / 255.0, (0, 0), 0.6 * max(scale, 0.5))
    image *= (1.0 - 0.5 * darkness)[..., None]

    image += rng.normal(0.0, 3.0, size=image.shape).astype(np.float32)
    image[~fov] = rng.uniform(0.0, 6.0, size=(int((~fov).sum()), 3)).astype(np.float32)
    rgb = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    vessels = (tree >= 128) & fov
    return SyntheticFundus(image_rgb=rgb, vessels=vessels, fov=fov, branches=tuple(branches))
