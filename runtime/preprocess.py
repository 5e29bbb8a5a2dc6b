"""Preprocessing shared by training, evaluation and every runtime: gray/green, CLAHE, normalise."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# ITU-R BT.601 luma weights, the "weighted ratio" grayscale conversion used by the paper.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that turns a photograph into the model's input plane.

    Args:
        channel: ``"gray"`` (weighted RGB→gray) or ``"green"`` (the green channel alone).
        clahe_clip: CLAHE clip limit, as ``cv2.createCLAHE(clipLimit=...)``.
        clahe_grid: CLAHE tile grid size (square), as ``tileGridSize=(grid, grid)``.
        mean: subtracted after scaling to [0, 1].
        std: divided by after subtracting ``mean``.
    """

    channel: str = "gray"
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    mean: float = 0.5
    std: float = 0.5

    def __post_init__(self) -> None:
        if self.channel not in ("gray", "green"):
            raise ValueError(f"channel must be 'gray' or 'green', got {self.channel!r}")
        if self.clahe_clip <= 0 or self.clahe_grid < 1 or self.std <= 0:
            raise ValueError(f"invalid preprocessing values: {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PreprocessConfig:
        return cls(**values)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Bring an 8- or 16-bit image to uint8 (16-bit is scaled by 1/257)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {image.dtype}")


def to_single_channel(image_rgb: np.ndarray, channel: str = "gray") -> np.ndarray:
    """Reduce an RGB(A) or gray uint8 image to one uint8 plane (weighted gray or green)."""
    image = to_uint8(image_rgb)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected a gray, RGB or RGBA image, got shape {image.shape}")
    if image.shape[2] == 1:
        return image[:, :, 0]
    rgb = image[:, :, :3]
    if channel == "green":
        return np.ascontiguousarray(rgb[:, :, 1])
    # float32, one rounding per operation in this order, exactly as cpp/src/preprocess.cpp: a matrix
    # product (BLAS, FMA) rounds differently on ties such as (207, 93, 44) -> 121.5 and CLAHE widens
    # that one gray level into several
    r, g, b = (rgb[:, :, i].astype(np.float32) for i in range(3))
    wr, wg, wb = (np.float32(w) for w in GRAY_WEIGHTS_RGB)
    gray = r * wr + g * wg
    gray += b * wb
    gray += np.float32(0.5)
    return np.clip(gray, 0, 255).astype(np.uint8)


def apply_clahe(plane: np.ndarray, clip: float, grid: int) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a uint8 plane."""
    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(grid), int(grid))).apply(plane)


def enhance(image_rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Photograph (RGB order) → CLAHE-enhanced uint8 plane, the picture shown in panels."""
    return apply_clahe(to_single_channel(image_rgb, config.channel), config.clahe_clip, config.clahe_grid)


def normalise(plane_u8: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """uint8 plane → float32 model input, ``(x / 255 - mean) / std``."""
    return ((plane_u8.astype(np.float32) / 255.0) - config.mean) / config.std


def preprocess(image_rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Photograph (RGB order, any bit depth) → float32 HxW model input plane."""
    return normalise(enhance(image_rgb, config), config)
