"""Mutated image files for the bad-input fuzz test (tests/test_fuzz_inputs.py), from a fixed seed.

Sources are small copies of real DRIVE/CHASE photographs and masks (when the data is present) and
synthetic fundus images, encoded as JPEG (baseline, progressive, gray), PNG (8/16-bit, gray,
RGBA), TIFF (raw, LZW, 16-bit), GIF and BMP. Each file is damaged one way: truncated, bytes
flipped, junk inserted, header damaged, or its tail zeroed (a transfer that never finished); a few
stay intact as controls. A longer run than CI's, as a command:

    python tests/fuzz_images.py OUT_DIR --count 3000 --seed 7      # writes the files only
    FUNDUS_FUZZ_COUNT=3000 FUNDUS_FUZZ_SEED=7 pytest tests/test_fuzz_inputs.py
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fundus_vessels.runtime.synthetic import make_synthetic_fundus

SOURCE_SIZE = (120, 112)  # width, height: one tile each, so the fuzz test stays fast

Encoder = Callable[[np.ndarray], bytes]


def _cv2(ext: str, *params: int) -> Encoder:
    def encode(rgb: np.ndarray) -> bytes:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
        if rgb.ndim == 3 and rgb.shape[2] == 4:
            image = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
        ok, data = cv2.imencode(ext, image, list(params))
        assert ok, ext
        return data.tobytes()

    return encode


def _gif(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buffer, "GIF")
    return buffer.getvalue()


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# name -> (file suffix, pixel transform, encoder)
FORMATS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], Encoder]] = {
    "jpeg": (".jpg", lambda x: x, _cv2(".jpg", cv2.IMWRITE_JPEG_QUALITY, 90)),
    "jpeg-progressive": (".jpg", lambda x: x, _cv2(".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    "jpeg-gray": (".jpeg", _gray, _cv2(".jpg")),
    "png": (".png", lambda x: x, _cv2(".png")),
    "png16": (".png", lambda x: x.astype(np.uint16) * 257, _cv2(".png")),
    "png-gray": (".png", _gray, _cv2(".png")),
    "png-rgba": (".png", lambda x: np.dstack([x, np.full(x.shape[:2], 200, np.uint8)]), _cv2(".png")),
    "tiff": (".tif", lambda x: x, _cv2(".tif", cv2.IMWRITE_TIFF_COMPRESSION, 1)),
    "tiff-lzw": (".tiff", lambda x: x, _cv2(".tif", cv2.IMWRITE_TIFF_COMPRESSION, 5)),
    "tiff16": (".tif", lambda x: x.astype(np.uint16) * 257, _cv2(".tif")),
    "gif": (".gif", lambda x: x, _gif),
    "bmp": (".bmp", lambda x: x, _cv2(".bmp")),
}


def source_images(data_root: Path | None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) pairs: real photographs and masks scaled to SOURCE_SIZE, and synthetic ones."""
    sources = [
        (f"synth{seed}", make_synthetic_fundus(SOURCE_SIZE[1], SOURCE_SIZE[0], seed=seed).image_rgb)
        for seed in range(3)
    ]
    if data_root is None:
        return sources
    real = sorted((data_root / "CHASEDB1").glob("Image_1[12]?.jpg"))[:2]
    real += sorted((data_root / "DRIVE" / "test" / "images").glob("0[12]_test.tif"))[:2]
    real += sorted((data_root / "DRIVE" / "test" / "mask").glob("01_test_mask.gif"))[:1]
    for path in real:
        image = np.array(Image.open(path).convert("RGB"))
        sources.append((path.stem, cv2.resize(image, SOURCE_SIZE, interpolation=cv2.INTER_AREA)))
    return sources


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(1, len(data)))]


def flip_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        out[int(rng.integers(0, len(out)))] ^= int(rng.integers(1, 256))
    return bytes(out)


def insert_junk(data: bytes, rng: np.random.Generator) -> bytes:
    at = int(rng.integers(0, len(data)))
    return data[:at] + rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes() + data[at:]


def damage_header(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(0, min(32, len(out))))] = int(rng.integers(0, 256))
    return bytes(out)


def zero_tail(data: bytes, rng: np.random.Generator) -> bytes:
    keep = int(rng.integers(len(data) // 4, len(data)))
    return data[:keep] + bytes(len(data) - keep)


def intact(data: bytes, rng: np.random.Generator) -> bytes:
    return data


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "truncated": truncate,
    "flipped": flip_bytes,
    "junk": insert_junk,
    "header": damage_header,
    "zero-tail": zero_tail,
    "intact": intact,
}
# intact files are controls: one in twelve
MUTATION_WEIGHTS = np.array([3, 3, 2, 2, 1, 1], dtype=float) / 12


def write_corpus(out_dir: Path, count: int, seed: int, data_root: Path | None) -> list[Path]:
    """Write ``count`` mutated files into ``out_dir``; names say source, format and mutation."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoded = {
        (name, fmt): (suffix, encoder(transform(rgb)))
        for name, rgb in source_images(data_root)
        for fmt, (suffix, transform, encoder) in FORMATS.items()
    }
    keys = sorted(encoded)
    names = list(MUTATIONS)
    paths = []
    for index in range(count):
        name, fmt = keys[int(rng.integers(0, len(keys)))]
        suffix, data = encoded[(name, fmt)]
        mutation = names[int(rng.choice(len(names), p=MUTATION_WEIGHTS))]
        path = out_dir / f"{index:04d}_{name}_{fmt}_{mutation}{suffix}"
        path.write_bytes(MUTATIONS[mutation](data, rng))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--data-root", type=Path, help="folder holding DRIVE/ and CHASEDB1/")
    args = parser.parse_args()
    paths = write_corpus(args.out_dir, args.count, args.seed, args.data_root)
    print(f"{len(paths)} files in {args.out_dir}")


if __name__ == "__main__":
    main()
