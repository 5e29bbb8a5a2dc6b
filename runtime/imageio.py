"""Image reading (any common format, 8/16-bit, gray/RGB/RGBA) and atomic file writing."""

from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime import dicom
from fundus_vessels.runtime.decode import ImageDecodeError, decode_image, is_gif, is_jpeg
from fundus_vessels.runtime.file_io import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from fundus_vessels.runtime.file_io import ImageReadError as ImageReadError
from fundus_vessels.runtime.file_io import atomic_output as atomic_output
from fundus_vessels.runtime.file_io import check_pixels as check_pixels
from fundus_vessels.runtime.file_io import max_pixels as max_pixels
from fundus_vessels.runtime.file_io import set_max_pixels as set_max_pixels
from fundus_vessels.runtime.image_header import declared_size
from fundus_vessels.runtime.outputs_guard import printable
from fundus_vessels.runtime.png_writer import encodable, encode_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".bmp", ".ppm", ".pgm", ".dcm", ".dicom")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as RGB (or gray) numpy array, keeping 16-bit depth; alpha is dropped.

    A file whose decoder reports any warning or error is refused (:mod:`fundus_vessels.runtime.decode`).
    """
    p = Path(path)
    if p.exists() and not p.is_file():  # a FIFO or a device would block the reader; a folder is not an image
        raise ImageReadError(f"{printable(p)}: not a regular file")
    if not p.is_file():
        raise ImageReadError(f"{printable(p)}: no such file")
    if p.stat().st_size == 0:
        raise ImageReadError(f"{printable(p)}: file is empty")
    if dicom.is_dicom(p):  # pydicom itself is imported only when a file is DICOM
        return dicom.read_dicom_image(p)
    data = p.read_bytes()
    size = declared_size(data)
    if size is not None:
        check_pixels(p, *size)
    try:
        image = decode_image(data)
    except ImageDecodeError as exc:
        raise ImageReadError(f"{printable(p)}: {exc}") from exc
    if image.size == 0:
        raise ImageReadError(f"{printable(p)}: image has no pixels")
    unsupported = unsupported_pixels(image)
    if unsupported:
        raise ImageReadError(f"{printable(p)}: {unsupported}")
    if image.dtype.kind == "f" and not np.isfinite(image).any():  # cpp/src/imageio.cpp: the same rule
        raise ImageReadError(f"{printable(p)}: image holds no finite pixel values (all NaN or infinite)")
    if not (is_gif(data) or is_jpeg(data)) and image.ndim == 3:  # OpenCV's BGR(A) -> RGB
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def unsupported_pixels(image: np.ndarray) -> str | None:
    """Why the pipeline cannot take ``image``'s sample type, or None (cpp/src/imageio.cpp: the same words).

    Signed integers are not light intensities; colour float64 has no colour conversion in OpenCV (gray
    float64 is read).
    """
    if image.dtype.kind == "i":
        return f"unsupported pixel type {image.dtype} (images are 8- or 16-bit unsigned, or floating point)"
    if image.dtype == np.float64 and image.ndim == 3:
        return (
            f"unsupported pixel type float64 with {image.shape[2]} channels "
            "(colour images are 8- or 16-bit unsigned, or float32)"
        )
    return None


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label or mask image as a boolean array (any non-zero pixel is true)."""
    image = read_image(path)
    if image.ndim == 3:
        image = image.max(axis=2)
    return image > 127 if image.max() > 1 else image > 0


def stale_temporaries(path: str | os.PathLike, suffix: str = ".tmp") -> list[Path]:
    """Temporary files :func:`atomic_output` left beside ``path`` when its writer was killed."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*{suffix}"))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image atomically (temp file + rename); RGB input is stored as RGB."""
    p = Path(path)
    if p.suffix.lower() in ("", ".png") and encodable(image):  # ISA-L deflate, large ones on every CPU
        _atomic_write_bytes(p, encode_png(image))
        return
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(p.suffix or ".png", image)
    if not ok:
        raise OSError(f"{p}: OpenCV could not encode the image")
    _atomic_write_bytes(p, encoded.tobytes())


def finite_or_null(value: object) -> object:
    """``value`` with every NaN or infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def write_json(path: str | os.PathLike, payload: object) -> None:
    """Write JSON atomically, indented and with a trailing newline; a non-finite number becomes null."""
    text = json.dumps(finite_or_null(payload), indent=2, sort_keys=False, allow_nan=False)
    _atomic_write_bytes(Path(path), (text + "\n").encode())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes atomically."""
    _atomic_write_bytes(Path(path), data)


def _is_suffixless_dicom(path: Path) -> bool:
    """A name without a suffix holding the DICOM Part 10 preamble (cameras write such files)."""
    if path.suffix or path.name.startswith("."):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, or DICOM by content), sorted by name.

    Only regular files: a FIFO or a device would block the reader. cpp/src/main.cpp lists the same files.
    """
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or _is_suffixless_dicom(p))
    )
