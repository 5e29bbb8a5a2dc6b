"""Helpers for the runtime tests: synthetic test images in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def write_synthetic_images(folder: Path, count: int = 3, height: int = 300, width: int = 280) -> list[Path]:
    """``count`` small synthetic fundus PNGs (different seeds and sizes) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"fundus{seed}.png"
        write_image(path, make_synthetic_fundus(height + 16 * seed, width, seed=seed).image_rgb)
        paths.append(path)
    return paths


def small_fundus(height: int = 300, width: int = 280, seed: int = 0) -> np.ndarray:
    return make_synthetic_fundus(height, width, seed).image_rgb
