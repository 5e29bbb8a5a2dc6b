"""Preprocessing: gray weights, green channel, CLAHE with the configured values, bit depth, alpha."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fundus_vessels.runtime.preprocess import PreprocessConfig, enhance, normalise, preprocess, to_single_channel
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_synthetic_fundus(200, 190, seed=1).image_rgb


def test_gray_uses_bt601_weights() -> None:
    pixel = np.array([[[100, 150, 200]]], dtype=np.uint8)
    # 0.299 * 100 + 0.587 * 150 + 0.114 * 200 = 140.75
    assert to_single_channel(pixel, "gray")[0, 0] == 141
    assert to_single_channel(pixel, "green")[0, 0] == 150


def test_clahe_uses_the_configured_clip_and_grid(photo: np.ndarray) -> None:
    config = PreprocessConfig(channel="green", clahe_clip=3.0, clahe_grid=4)
    expected = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4)).apply(np.ascontiguousarray(photo[:, :, 1]))
    np.testing.assert_array_equal(enhance(photo, config), expected)
    assert not np.array_equal(enhance(photo, PreprocessConfig(channel="green")), expected)


def test_normalise_maps_to_mean_and_std() -> None:
    config = PreprocessConfig(mean=0.5, std=0.25)
    out = normalise(np.array([[0, 255]], dtype=np.uint8), config)
    np.testing.assert_allclose(out, [[-2.0, 2.0]])
    assert out.dtype == np.float32


def test_16_bit_gives_the_same_input_as_8_bit(photo: np.ndarray) -> None:
    deep = photo.astype(np.uint16) * 257
    config = PreprocessConfig()
    np.testing.assert_array_equal(preprocess(deep, config), preprocess(photo, config))


def test_alpha_channel_is_ignored(photo: np.ndarray) -> None:
    alpha = np.random.default_rng(0).integers(0, 256, photo.shape[:2], dtype=np.uint8)
    rgba = np.dstack([photo, alpha])
    config = PreprocessConfig()
    np.testing.assert_array_equal(preprocess(rgba, config), preprocess(photo, config))


def test_gray_input_passes_through(photo: np.ndarray) -> None:
    gray = to_single_channel(photo, "gray")
    np.testing.assert_array_equal(preprocess(gray, PreprocessConfig()), preprocess(photo, PreprocessConfig()))


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="channel"):
        PreprocessConfig(channel="blue")
