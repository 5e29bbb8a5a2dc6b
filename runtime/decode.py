"""Image bytes -> pixels, refusing every file whose decoder reports a warning or an error.

OpenCV returns an image for a truncated or corrupt JPEG (libjpeg warns "Premature end of JPEG
file" and fills the rest with grey) and keeps quiet about libpng and libtiff warnings, except
that the libraries print them on the process's standard error. So the decoder runs with file
descriptor 2 captured: anything it printed is the reason the file is refused, as one line of
ours. The C++ reader (cpp/src/imageio.cpp) applies the same rule with the same message classes:

- ``image file is truncated (...)``: the decoder ran out of data;
- ``corrupt image data (...)``: the decoder reported anything else;
- ``not a readable image (...)``: no decoder recognised the bytes.

GIF goes through Pillow (OpenCV has no GIF decoder), with Pillow's warnings turned into errors.

A PNG whose chunks are cut short or damaged is refused from the file's own structure
(:mod:`fundus_vessels.runtime.png_chunks`) before OpenCV sees it: what libpng prints for it depends
on the OpenCV build (4.x prints "PNG input buffer is incomplete", 5.x may print nothing and return
no image), the chunk walk does not.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from fundus_vessels.runtime.png_chunks import png_refusal

# a diagnostic holding one of these means the data ended early (same list in cpp/src/diagnostics.cpp)
TRUNCATION_WORDS = (
    "premature end of jpeg file",
    "truncated",
    "incomplete",
    "unexpected end",
    "read error",
    "not enough data",
    "seek error",
    "io error during reading",  # libtiff: a tag's data lies past the end of the file
    "cannot read tiff header",  # libtiff: the file ends inside its 8-byte header
)
_STDERR_LOCK = threading.Lock()  # file descriptor 2 is one per process
# "[ WARN:0@1.5] global grfmt_tiff.cpp (746) readData " (OpenCV 4) or "... global grfmt_tiff.cpp:117 TIFF_Error " (5)
_OPENCV_LOG_PREFIX = re.compile(r"^\[\s*\w+:[^\]]*\]\s+global\s+\S+?(:\d+|\s+\(\d+\))\s+\S+\s+")


class ImageDecodeError(ValueError):
    """Bytes no decoder read completely and cleanly; the message is the reason, without the file name."""


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect, as stripped lines, what native code writes to file descriptor 2 inside the block.

    The list is filled when the block ends. Writes from other threads meanwhile are collected too,
    so callers keep the block to the decoder call alone.
    """
    lines: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            lines.extend(_OPENCV_LOG_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip())


def refusal(diagnostics: list[str]) -> str:
    """The reason for refusing a file from its decoder's diagnostics: ``<class> (<first line>)``."""
    text = "; ".join(diagnostics)
    kind = "image file is truncated" if any(w in text.lower() for w in TRUNCATION_WORDS) else "corrupt image data"
    return f"{kind} ({diagnostics[0][:200]})"


def is_gif(data: bytes) -> bool:
    return data[:6] in (b"GIF87a", b"GIF89a")


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def decode_image(data: bytes) -> np.ndarray:
    """Pixels of ``data``: JPEG as RGB or gray, GIF as RGB or gray, other formats as OpenCV gives them
    (BGR(A) order, their own bit depth). Raises :class:`ImageDecodeError` naming the reason."""
    if is_gif(data):
        return _decode_gif(data)
    if is_jpeg(data):
        return _decode_jpeg(data)
    refused = png_refusal(data)
    if refused is not None:
        raise ImageDecodeError(refused)
    image, failure = None, "OpenCV could not decode it"
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    with captured_stderr() as diagnostics:
        logging.setLogLevel(logging.LOG_LEVEL_WARNING)  # libtiff's warnings come through OpenCV's log
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            failure = str(exc).strip().splitlines()[-1]
        finally:
            logging.setLogLevel(level)
    if diagnostics:
        raise ImageDecodeError(refusal(diagnostics))
    if image is None:
        raise ImageDecodeError(f"not a readable image ({failure})")
    return image


def _decode_jpeg(data: bytes) -> np.ndarray:
    """libjpeg-turbo (simplejpeg) with every warning an error; OpenCV hides truncation in some builds."""
    try:
        try:
            colorspace = simplejpeg.decode_jpeg_header(data)[2]
        except ValueError:  # TurboJPEG's header check hides libjpeg's reason; decoding tells it
            simplejpeg.decode_jpeg(data, strict=True)
            raise
        if colorspace in ("CMYK", "YCCK"):
            raise ImageDecodeError("JPEG: CMYK colour space not supported")
        gray = colorspace == "Gray"
        image = simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB", strict=True)
    except ValueError as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        reason = str(exc)
        if reason.startswith("tjDecompressHeader") and _ends_before_scan(data):
            reason = "Premature end of JPEG file"  # libjpeg's word for it (TurboJPEG's header check hides it)
        words = reason.lower()
        kind = "image file is truncated" if any(w in words for w in TRUNCATION_WORDS) else "corrupt image data"
        raise ImageDecodeError(f"{kind} (JPEG: {reason})") from exc
    return image[:, :, 0] if gray else image


def _ends_before_scan(data: bytes) -> bool:
    """True when the data ends before the start-of-scan segment (FF DA and its header) is complete."""
    at = data.find(b"\xff\xda")
    return at < 0 or at + 4 > len(data) or at + 2 + int.from_bytes(data[at + 2 : at + 4], "big") > len(data)


def _gif_header_truncation(data: bytes) -> str | None:
    """cpp/src/gif.cpp's reason when the data ends inside the screen descriptor or colour table."""
    if len(data) < 13:
        return "truncated GIF (logical screen descriptor)"
    if data[10] & 0x80 and len(data) < 13 + (3 << ((data[10] & 7) + 1)):
        return "truncated GIF (colour table)"
    return None


def _decode_gif(data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if im.mode in ("1", "L", "LA"):
                    im = im.convert("L")
                elif im.mode != "RGB":
                    im = im.convert("RGB")
                return np.array(im)
    except Exception as exc:  # Pillow raises many types for bad files
        reason = _gif_header_truncation(data) or str(exc)
        words = reason.lower()
        kind = "image file is truncated" if any(w in words for w in TRUNCATION_WORDS) else "not a readable image"
        raise ImageDecodeError(f"{kind} (GIF: {reason})") from exc
