"""A PNG file's chunk structure checked as libpng reads it, so that the refusal does not depend on OpenCV.

libpng names truncation and damage on standard error, and runtime/decode.py turns what it prints
into the refusal's class. OpenCV 4.x lets libpng print; opencv-python-headless 5.x prints nothing
for a PNG cut early in its image data and returns no image. :func:`png_refusal` finds the same
problems from the bytes, chunk by chunk in file order, with the checks libpng makes before it
decodes a chunk (measured against the C++ binary, libpng 1.6 under OpenCV 4.6):

- the data ends inside a chunk, or before IEND: ``image file is truncated``;
- a length of 2**31 or more, a type that is not four ASCII letters, a length above libpng's chunk
  limit, an IHDR whose length is not 13, a wrong CRC: ``corrupt image data``.

A file that passes every check up to IEND is left to the decoder (its pixels, its zlib stream).
"""

from __future__ import annotations

import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRUNCATED = "image file is truncated"
CORRUPT = "corrupt image data"
# libpng's PNG_USER_CHUNK_MALLOC_MAX: the longest chunk it reads, unless the image data needs more
CHUNK_LIMIT = 8_000_000
# channels per colour type (IHDR byte 9), palette indices being one
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_refusal(data: bytes) -> str | None:
    """``<class> (PNG: <reason>)`` for a PNG whose chunks are cut short or damaged, else None.

    None also for data that is not a PNG: the decoder then says what it is.
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    at, ihdr = len(PNG_SIGNATURE), b""
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        problem = _header_problem(length, kind, ihdr)
        if problem:
            return f"{CORRUPT} (PNG: {problem})"
        end = at + 12 + length
        if end > len(data):
            return f"{TRUNCATED} (PNG: the data ends inside chunk {kind.decode()}, {end - len(data)} bytes missing)"
        if zlib.crc32(data[at + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"{CORRUPT} (PNG: {kind.decode()}: CRC error)"
        if kind == b"IEND":
            return None
        if kind == b"IHDR":
            ihdr = data[at + 8 : end - 4]
        at = end
    where = "inside a chunk header" if at < len(data) else "before IEND"
    return f"{TRUNCATED} (PNG: the data ends {where})"


def _header_problem(length: int, kind: bytes, ihdr: bytes) -> str | None:
    """What libpng refuses in a chunk's length and type before it reads the chunk's data."""
    if length >= 1 << 31:
        return "chunk length out of range"
    if not (kind.isascii() and kind.isalpha()):
        return "invalid chunk type"
    if length > max(CHUNK_LIMIT, _image_data_limit(ihdr) if kind == b"IDAT" else 0):
        return f"{kind.decode()}: chunk data is too large"
    if kind == b"IHDR" and length != 13:
        return "IHDR: invalid"
    return None


def _image_data_limit(ihdr: bytes) -> int:
    """libpng's bound on one IDAT chunk: the filtered image's size plus zlib's overhead (png_check_chunk_length)."""
    if len(ihdr) != 13:
        return 0
    width, height = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    bit_depth, colour_type, interlaced = ihdr[8], ihdr[9], ihdr[12]
    row = width * CHANNELS.get(colour_type, 1) * (2 if bit_depth > 8 else 1) + 1 + (6 if interlaced else 0)
    limit = height * row if height <= 0xFFFFFFFF // row else (1 << 31) - 1
    limit += 6 + 5 * (limit // min(row, 32566) + 1)
    return min(limit, (1 << 31) - 1)
