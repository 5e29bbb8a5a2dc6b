"""How many channels an image file stores, alpha included, read from its header (PNG, TIFF).

OpenCV hides it: a gray+alpha PNG decodes to 4 channels, a gray+alpha TIFF to 1, and the reader
drops alpha. ``summary.json`` reports what the file holds; ``storedChannels`` in ``cpp/src/imageio.cpp`` is the twin.
"""

from __future__ import annotations

import os
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels (3: palette)
TIFF_SAMPLES_PER_PIXEL = 277


def stored_channels(path: str | os.PathLike) -> int | None:
    """Channels stored in a PNG or TIFF file (alpha included); ``None`` for other formats or a bad header."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
            if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
                return PNG_COLOUR_CHANNELS.get(head[25])
            if head[:4] in (b"II*\0", b"MM\0*"):
                return _tiff_samples(f, "<" if head[:2] == b"II" else ">", head)
    except (OSError, IndexError, struct.error):
        pass
    return None


def _tiff_samples(f, order: str, head: bytes) -> int | None:
    """SamplesPerPixel of the first IFD (TIFF's default 1 when the tag is absent)."""
    f.seek(struct.unpack(order + "I", head[4:8])[0])
    (count,) = struct.unpack(order + "H", f.read(2))
    entries = f.read(12 * count)
    for i in range(count):
        tag, kind, _, value = struct.unpack(order + "HHI4s", entries[12 * i : 12 * i + 12])
        if tag == TIFF_SAMPLES_PER_PIXEL:
            return struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    return 1
