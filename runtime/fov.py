"""Field-of-view masks: computed from the photograph where no official mask exists."""

from __future__ import annotations

import cv2
import numpy as np

from fundus_vessels.runtime.preprocess import to_uint8

# px: a photograph whose longer side is above this finds its FOV on a copy shrunk to it (INTER_AREA), and the
# mask comes back by nearest neighbour. The aperture is a disc: 1024 px place its edge within 2-4 px of a
# 2000-4000 px photograph's, and an 8-megapixel photograph's FOV takes about 20 ms instead of 75 (cpp/src/fov.cpp
# kFovWorkSide; tests/test_cpp_binary.py holds the two to the same mask).
FOV_WORK_SIDE = 1024


def fov_from_image(image_rgb: np.ndarray, threshold: int = 20) -> np.ndarray:
    """Boolean FOV mask of a fundus photograph: threshold the red/brightness, then clean up.

    The camera aperture is a bright disc on a dark surround. The largest connected component
    above ``threshold`` is kept, holes are filled, and a small erosion drops the rim; photographs
    larger than :data:`FOV_WORK_SIDE` are measured on a shrunk copy.
    """
    image = to_uint8(image_rgb)
    height, width = image.shape[:2]
    factor = FOV_WORK_SIDE / max(height, width)
    if factor >= 1:
        return _fov_mask(image, threshold)
    size = (max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5)))
    small = _fov_mask(cv2.resize(image, size, interpolation=cv2.INTER_AREA), threshold)
    return cv2.resize(small.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)


def _fov_mask(image: np.ndarray, threshold: int) -> np.ndarray:
    """:func:`fov_from_image` at the size of ``image`` (8-bit)."""
    if image.ndim == 3 and image.shape[2] >= 3:
        # red channel, lifted by half the brightest channel so dim, non-red photos still separate
        # (per-plane OpenCV maxima: numpy's max over the interleaved axis took 0.2 s on 8 MP)
        red, green, blue = cv2.split(np.ascontiguousarray(image[:, :, :3]))
        brightest = cv2.max(cv2.max(red, green), blue)
        plane = cv2.max(red, np.right_shift(brightest, 1))
    elif image.ndim == 3:
        plane = image[:, :, 0]
    else:
        plane = image
    binary = (plane > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.ones(plane.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    # fill holes: flood the background from the border, everything not reached is inside
    flood = np.pad(mask, 1)
    cv2.floodFill(flood, None, (0, 0), 2)
    mask = (flood[1:-1, 1:-1] != 2).astype(np.uint8)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return mask.astype(bool)
