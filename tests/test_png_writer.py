"""runtime.png_writer: large outputs compressed in parallel stripes are ordinary, lossless PNGs."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fundus_vessels.runtime import png_writer
from fundus_vessels.runtime.imageio import read_image, write_image
from fundus_vessels.runtime.png_chunks import png_refusal
from fundus_vessels.runtime.png_writer import adler32_combine, encode_png


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 2)
    return np.ascontiguousarray(smooth)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9, 3), (7, 5), (50, 37, 3), (301, 203, 4), (600, 401, 3)])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_reader_decodes_the_same_pixels(shape: tuple[int, ...], workers: int) -> None:
    image = _image(shape)
    data = encode_png(image, workers)
    assert png_refusal(data) is None
    with Image.open(io.BytesIO(data)) as pil:
        pil.load()
        assert pil.mode == {1: "L", 3: "RGB", 4: "RGBA"}[1 if image.ndim == 2 else image.shape[2]]
        np.testing.assert_array_equal(np.asarray(pil), image)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    np.testing.assert_array_equal(decoded, image)


def test_adler32_combine_matches_zlib() -> None:
    for n in range(50):
        a, b = os.urandom(n * 37 % 5000), os.urandom(n * 911 % 70000)
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_other_pixel_types_are_refused() -> None:
    with pytest.raises(ValueError, match="8-bit"):
        encode_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="8-bit"):
        encode_png(np.zeros((4, 4, 2), np.uint8))


def test_write_image_uses_it_for_8_bit_pngs_large_ones_in_stripes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stripes = []
    monkeypatch.setattr(png_writer, "usable_cpus", lambda: 2)
    real_stripe = png_writer._stripe
    monkeypatch.setattr(png_writer, "_stripe", lambda rows, last: stripes.append(len(rows)) or real_stripe(rows, last))
    large = _image((png_writer.PARALLEL_MIN_PIXELS // 1000 + 1, 1000, 3))
    small = _image((100, 100, 3))
    for name, image in (("large.png", large), ("small.png", small), ("gray.png", small[:, :, 0])):
        write_image(tmp_path / name, image)
        np.testing.assert_array_equal(read_image(tmp_path / name), image)
    assert sorted(stripes) == [100, 100, 1000, 1001]  # the large image in two stripes, the small ones in one
    write_image(tmp_path / "deep.png", (small.astype(np.uint16) * 257))  # 16-bit: OpenCV writes it
    assert len(stripes) == 4
    assert read_image(tmp_path / "deep.png").dtype == np.uint16
