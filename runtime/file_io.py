"""What :mod:`~fundus_vessels.runtime.imageio` and :mod:`~fundus_vessels.runtime.dicom` share: the read
error, the pixel cap and atomic writes (here so that imageio can import dicom without a cycle)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fundus_vessels.runtime.outputs_guard import printable

# The pixel cap (--max-pixels): an image whose header declares more is refused before any decoding.
# 100 megapixels is twice the largest fundus cameras' (about 7000 x 7000) and bounds one image's peak
# memory (README, "Memory"); the C++ binary has the same default (cpp/src/imageio.cpp kDefaultMaxPixels).
DEFAULT_MAX_PIXELS = 100_000_000
_max_pixels = DEFAULT_MAX_PIXELS


class ImageReadError(ValueError):
    """An input file that is missing, empty or not a readable image."""


def set_max_pixels(limit: int) -> None:
    """The pixel cap for this process (``--max-pixels``); OpenCV's own decoders get it too."""
    global _max_pixels
    _max_pixels = int(limit)
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(_max_pixels)  # read by OpenCV at its first decode


def max_pixels() -> int:
    return _max_pixels


def check_pixels(path: str | os.PathLike, width: int, height: int) -> None:
    """Refuse ``path`` when ``width`` x ``height`` exceeds the pixel cap (the same message as the C++ binary)."""
    if width * height > _max_pixels:
        raise ImageReadError(
            f"{printable(path)}: image too large ({width}x{height} = {round(width * height / 1e6, 1):g} megapixels; "
            f"limit {round(_max_pixels / 1e6, 1):g} megapixels, --max-pixels changes it)"
        )


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    Readers never see a half-written file, and a failure leaves the previous ``path`` untouched.
    ``suffix`` lets writers that choose the format by extension (e.g. matplotlib) keep it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs are shared files
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
