"""Fixtures for the runtime tests: a bundle exported from ``tiny_checkpoint``, test images on disk.

Import the fixtures into a test module (``from runtime_fixtures import tiny_bundle``). The export
runs once per session whichever modules use it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from runtime.imageio import write_image
from runtime.synthetic import make_synthetic_fundus


@functools.cache
def _export(checkpoint: Path, out_dir: Path) -> Path:
    from export.onnx_export import export_bundle

    return export_bundle(checkpoint, out_dir, static=True, name="tiny-test")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundle folder (model.json, model.onnx, model.static.onnx) of the random-weight tiny U-Net."""
    return _export(tiny_checkpoint, tiny_checkpoint.parent / "bundle")


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
