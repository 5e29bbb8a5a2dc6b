"""The synthetic fundus: deterministic per seed and shaped like a photograph."""

from __future__ import annotations

import numpy as np
import pytest

from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    a, b, c = (make_synthetic_fundus(160, 150, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.image_rgb, b.image_rgb)
    np.testing.assert_array_equal(a.vessels, b.vessels)
    assert not np.array_equal(a.image_rgb, c.image_rgb)


def test_shapes_types_and_anatomy() -> None:
    s = make_synthetic_fundus(seed=0)
    assert s.image_rgb.shape == (584, 565, 3) and s.image_rgb.dtype == np.uint8
    assert s.vessels.dtype == bool and s.fov.dtype == bool
    assert not (s.vessels & ~s.fov).any(), "vessels only inside the FOV"
    fraction = s.vessels.sum() / s.fov.sum()
    assert 0.04 < fraction < 0.25
    green = s.image_rgb[:, :, 1].astype(float)
    background = s.fov & ~s.vessels
    assert green[s.vessels].mean() < green[background].mean() - 10, "vessels darker than background"
    assert s.image_rgb[~s.fov].max() < 10, "dark surround"
    red = s.image_rgb[:, :, 0].astype(float)
    assert red[background].mean() > green[background].mean(), "orange-red fundus"


def test_too_small_is_rejected() -> None:
    with pytest.raises(ValueError):
        make_synthetic_fundus(4, 4)
