"""runtime/scale.py, the scale rule on its own (no data, no model): diameter, factor, snap, fallback, sizes.

A synthetic fundus (runtime/synthetic.py) drawn at two sizes has FOV discs 0.94 x the shorter side
across; the rule must bring both to the same reference, say why when it cannot, and keep sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.scale import (
    ScaleConfig,
    decide_scale,
    fov_diameter,
    parse_scale,
    resample,
    resample_back,
    resample_label,
    scaled_size,
)
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

CONFIG = ScaleConfig(reference_diameter=540.0, tolerance=0.05, factor_range=(0.1, 1.5))


@pytest.fixture(scope="module")
def fundi() -> dict[int, np.ndarray]:
    """The same drawing at two sizes: FOV ~540 px (DRIVE's scale) and ~1128 px across."""
    return {side: make_synthetic_fundus(side, side + 40, seed=5).image_rgb for side in (575, 1200)}


def test_the_drawn_fov_diameter_is_measured_and_brought_to_the_reference(fundi: dict[int, np.ndarray]) -> None:
    for side, image in fundi.items():
        diameter = fov_diameter(fov_from_image(image))
        assert diameter == pytest.approx(0.94 * side, abs=8)  # the disc, less the FOV mask's 5 px erosion
        decision = decide_scale(fov_from_image(image), CONFIG)
        assert decision.method == "fov" and decision.fov_diameter == diameter and decision.in_domain
        if side == 575:  # within 5 % of the reference: snapped to 1, nothing resampled
            assert decision.factor == 1.0
        else:
            assert decision.factor == pytest.approx(540 / diameter) and 0.45 < decision.factor < 0.5
            scaled = resample(image, decision.factor)
            assert scaled.shape[:2] == (round(1200 * decision.factor), round(1240 * decision.factor))
            # at the model's scale the big photograph's FOV is the reference diameter, within a pixel or two
            assert fov_diameter(fov_from_image(scaled)) == pytest.approx(540, abs=3)


def test_a_frame_without_visible_fov_falls_back_to_the_image_size() -> None:
    crop = make_synthetic_fundus(600, 600, seed=1).image_rgb[150:450, 100:500]  # inside the disc: no dark surround
    fov = fov_from_image(crop)
    assert fov.all() and fov_diameter(fov) is None
    decision = decide_scale(fov, CONFIG)
    assert decision.method == "image-size" and decision.fov_diameter == 400.0
    assert decision.factor == pytest.approx(540 / 400) and not decision.in_domain
    assert decision.to_dict()["note"] == "FOV not found: scaled by image size"
    # an empty mask is not found either; a disc touching every border is (it does not cover 97 %)
    assert fov_diameter(np.zeros((50, 60), bool)) is None
    yy, xx = np.mgrid[0:101, 0:101]
    assert fov_diameter(np.hypot(yy - 50, xx - 50) <= 50.5) == 101.0


def test_snap_domain_fixed_and_none() -> None:
    disc = np.zeros((700, 700), bool)
    disc[50:600, 60:620] = True  # 550 x 560 bounding box: diameter 560
    assert decide_scale(disc, CONFIG).factor == 1.0  # 540/560 = 0.964, within the tolerance
    assert decide_scale(disc, ScaleConfig(540.0, tolerance=0.01)).factor == pytest.approx(540 / 560)
    small = np.zeros((400, 400), bool)
    small[50:351, 50:351] = True  # 301 px: factor 1.79 > 1.5
    outside = decide_scale(small, CONFIG)
    assert not outside.in_domain and outside.note == "scale factor 1.79 outside the model's range [0.1, 1.5]"
    fixed = decide_scale(disc, CONFIG, 0.5)
    assert (fixed.method, fixed.factor, fixed.fov_diameter, fixed.in_domain) == ("fixed", 0.5, None, True)
    assert not decide_scale(disc, CONFIG, 2.0).in_domain
    assert decide_scale(disc, CONFIG, "none").to_dict() == {
        "factor": 1.0,
        "method": "none",
        "fov_diameter": None,
        "in_domain": True,
    }
    assert decide_scale(disc, ScaleConfig()).note == "bundle has no scale reference"
    assert decide_scale(disc, CONFIG).to_dict()["fov_diameter"] == 560.0


def test_output_sizes_and_resampling_kinds() -> None:
    assert scaled_size((7, 5), 0.5) == (2, 4)  # Python round(): half to even, as the C++ std::nearbyint
    assert scaled_size((3, 3, 3), 0.01) == (1, 1)
    image = make_synthetic_fundus(300, 280, seed=2).image_rgb
    assert resample(image, 1.0) is image
    assert resample(image, 0.5).shape == (150, 140, 3) and resample(image, 1.5).shape == (450, 420, 3)
    mask = np.zeros((300, 280), bool)
    mask[100:200, 100:200] = True
    half = resample(mask, 0.5, "mask")
    assert half.dtype == bool and half.shape == (150, 140) and half.sum() == 50 * 50
    probability = np.full((150, 140), 0.25, np.float32)
    back = resample_back(probability, image.shape)
    assert back.shape == (300, 280) and np.allclose(back, 0.25)
    assert resample_back(back, image.shape) is back
    label = np.zeros((8, 8), bool)
    label[:, 3] = True  # a 1 px line, halved: area 0.5 is kept
    assert resample_label(label, 0.5).any(axis=0).sum() == 1
    with pytest.raises(ValueError, match="kind must be"):
        resample(image, 0.5, "probability")


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", "auto"), ("none", "none"), ("0.25", 0.25), ("4", 4.0), ("0.01", 0.01)]
)
def test_parse_scale(value: str, expected: str | float) -> None:
    assert parse_scale(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("big", "--scale must be auto, none or a positive number, got 'big'"),
        ("9", "--scale factor must be in [0.01, 4], got '9'"),
        ("0", "--scale factor must be in [0.01, 4], got '0'"),
        ("nan", "--scale factor must be in [0.01, 4], got 'nan'"),
    ],
)
def test_parse_scale_refuses(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_scale(value)
    assert str(info.value) == message
