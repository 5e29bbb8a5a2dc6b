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


# Start-of-frame markers: every JPEG coding process (not DHT C4, JPG C8, DAC CC)
JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
TIFF_IMAGE_WIDTH, TIFF_IMAGE_LENGTH = 256, 257


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a PNG, JPEG, GIF, BMP, TIFF or PNM header declares, read before any decoding.

    ``None`` for other formats or a header too damaged to say (the decoder then refuses the file).
    ``declaredSize`` in ``cpp/src/imageio.cpp`` reads the same fields the same way.
    """
    try:
        if data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        if data[:2] == b"BM" and len(data) >= 26:
            if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit fields
                return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
            width = int.from_bytes(data[18:22], "little", signed=True)
            return abs(width), abs(int.from_bytes(data[22:26], "little", signed=True))
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data, "<" if data[:2] == b"II" else ">")
        if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in b"123456":
            return _pnm_size(data)
    except (IndexError, struct.error):
        pass
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            at += 2
            continue
        if marker in JPEG_SOF:
            if at + 9 > len(data):
                return None
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")
        if marker == 0xDA:  # start of scan before any frame header
            return None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _tiff_size(data: bytes, order: str) -> tuple[int, int] | None:
    ifd = struct.unpack(order + "I", data[4:8])[0]
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found = {}
    for i in range(count):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (TIFF_IMAGE_WIDTH, TIFF_IMAGE_LENGTH) and kind in (3, 4):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12])[0]
    if len(found) < 2:
        return None
    return found[TIFF_IMAGE_WIDTH], found[TIFF_IMAGE_LENGTH]


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PBM/PGM/PPM header: whitespace-separated, ``#`` comments to the line's end."""
    numbers, at, end = [], 2, min(len(data), 4096)
    while len(numbers) < 2 and at < end:
        c = data[at : at + 1]
        if c == b"#":
            while at < end and data[at : at + 1] not in (b"\n", b"\r"):
                at += 1
        elif c.isdigit():
            start = at
            while at < end and data[at : at + 1].isdigit():
                at += 1
            numbers.append(int(data[start:at][:12]))
            continue
        elif not c.isspace():
            return None
        at += 1
    return (numbers[0], numbers[1]) if len(numbers) == 2 else None
