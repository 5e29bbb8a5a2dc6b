"""Bad input files: refused by both implementations, by name, with the same class of reason.

An image that was not completely and cleanly decoded is never segmented (issue 13): truncated
JPEGs (OpenCV 4.6 fills the missing part with grey), JPEGs whose decoder warns, PNGs whose CRC
is wrong, TIFFs libtiff complains about. Library diagnostics become our one line, never raw stderr.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.imageio import ImageReadError, read_image
from fundus_vessels.runtime.png_chunks import png_refusal
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def encoded(ext: str, *params: int) -> bytes:
    rgb = make_synthetic_fundus(140, 150, seed=3).image_rgb
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return data.tobytes()


def jpeg_with_corrupt_scan() -> bytes:
    """A JPEG with bytes of its scan replaced by a restart marker: libjpeg warns, decodes on."""
    data = bytearray(encoded(".jpg"))
    middle = len(data) // 2
    data[middle : middle + 2] = b"\xff\xd3"
    return bytes(data)


def png_with_bad_idat_crc() -> bytes:
    """A PNG whose IDAT checksum is zeroed: Pillow decodes it, libpng refuses it."""
    data = bytearray(encoded(".png"))
    at = data.index(b"IDAT")
    length = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 + length : at + 8 + length] = bytes(4)
    return bytes(data)


def zeroed_tail(data: bytes) -> bytes:
    """The file's size kept, its second half zeros: a transfer that never finished."""
    return data[: len(data) // 2] + bytes(len(data) - len(data) // 2)


def set_length(data: bytes, at: int, length: int) -> bytes:
    return data[:at] + length.to_bytes(4, "big") + data[at + 4 :]


# name -> (bytes, class of reason)
CASES = {
    "half.jpg": (lambda: encoded(".jpg")[: len(encoded(".jpg")) // 2], "image file is truncated"),
    "header-only-jpg.jpg": (lambda: encoded(".jpg")[:300], "image file is truncated"),
    "corrupt-scan-jpg.jpg": (jpeg_with_corrupt_scan, "corrupt image data"),
    "bad-crc.png": (png_with_bad_idat_crc, "corrupt image data"),
    "half-png.png": (lambda: encoded(".png")[: len(encoded(".png")) // 2], "image file is truncated"),
    # cut early in IDAT OpenCV 5 prints nothing and returns no image; the chunk walk still knows
    "png-cut-in-idat.png": (lambda: encoded(".png")[:100], "image file is truncated"),
    "png-no-iend.png": (lambda: encoded(".png")[:-12], "image file is truncated"),
    "png-cut-in-iend.png": (lambda: encoded(".png")[:-1], "image file is truncated"),
    "png-zeroed-tail.png": (lambda: zeroed_tail(encoded(".png")), "corrupt image data"),
    "png-ihdr-length.png": (lambda: set_length(encoded(".png"), 8, 100_000), "corrupt image data"),
    "png-idat-too-long.png": (lambda: set_length(encoded(".png"), 33, 9_000_000), "corrupt image data"),
    "half-tif.tif": (lambda: encoded(".tif", cv2.IMWRITE_TIFF_COMPRESSION, 5)[:4000], "image file is truncated"),
    "zeros.bmp": (lambda: b"BM" + bytes(60), "corrupt image data"),
    "unknown.png": (lambda: b"\x89PNX" + bytes(60), "not a readable image"),
}


@pytest.fixture()
def bad_files(tmp_path: Path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, (make, _) in CASES.items():
        (folder / name).write_bytes(make())
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_refuses_with_the_reason_class(bad_files: Path, name: str, capfd: pytest.CaptureFixture) -> None:
    path = bad_files / name
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: {CASES[name][1]}")
    assert capfd.readouterr().err == "", "decoder diagnostics must not reach stderr raw"


def test_truncated_real_jpeg_is_refused_by_both(data_root: Path, cpp_binary: Path, tiny_bundle: Path, tmp_path: Path):
    """Issue 13's case: a CHASE photograph cut in half was segmented by C++ (vessel fraction 0.337)."""
    data = (data_root / "CHASEDB1" / "Image_01L.jpg").read_bytes()
    half, sliver = tmp_path / "half.jpg", tmp_path / "sliver.jpg"
    half.write_bytes(data[: len(data) // 2])
    sliver.write_bytes(data[:2550])
    for path in (half, sliver):
        result = subprocess.run(
            [str(cpp_binary), str(path), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle), "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1, result.stderr
        assert (
            result.stderr.strip() == f"fundus-infer: {path}: image file is truncated (JPEG: Premature end of JPEG file)"
        )
        with pytest.raises(ImageReadError, match="image file is truncated \\(JPEG: Premature end of JPEG file\\)"):
            read_image(path)


def test_both_refuse_the_same_files_with_one_line_each(
    bad_files: Path, cpp_binary: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    good = tmp_path / "bad" / "good.jpg"
    good.write_bytes(encoded(".jpg"))
    common = ["--model", str(tiny_bundle), "--quiet", "--save", "mask"]
    cpp = subprocess.run(
        [str(cpp_binary), str(bad_files), "-o", str(tmp_path / "cpp"), *common],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cpp.returncode == 1
    lines = cpp.stderr.strip().splitlines()
    assert len(lines) == len(CASES) and all(line.startswith("fundus-infer: ") for line in lines), cpp.stderr
    assert cli.main([str(bad_files), "-o", str(tmp_path / "py"), "--backend", "opencv", *common]) == 1
    for out in ("cpp", "py"):
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert [e["file"] for e in summary["images"]] == [str(good)]
        reasons = {Path(f["file"]).name: f["error"] for f in summary["failures"]}
        for name, (_, kind) in CASES.items():
            assert reasons[name].startswith(f"{bad_files / name}: {kind}"), (out, reasons[name])
    py_mask = cv2.imread(str(tmp_path / "py" / "good_mask.png"), cv2.IMREAD_UNCHANGED)
    cpp_mask = cv2.imread(str(tmp_path / "cpp" / "good_mask.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(py_mask, cpp_mask)


def test_jpeg_pixels_match_opencv(data_root: Path) -> None:
    """The strict JPEG decoder gives OpenCV's pixels (accurate DCT, fancy upsampling)."""
    for path in sorted((data_root / "CHASEDB1").glob("Image_0[1-3]L.jpg")):
        reference = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        assert np.array_equal(read_image(path), reference), path.name


def test_png_chunk_walk_classes_as_libpng() -> None:
    """Classes measured with the C++ binary (libpng 1.6 under OpenCV 4.6) for the same bytes."""
    whole = encoded(".png")
    idat = whole.index(b"IDAT") - 4
    assert png_refusal(whole) is None
    assert png_refusal(b"\x89PNX" + bytes(60)) is None, "not a PNG: the decoder says so"
    for cut in (8, 20, 33, 100, len(whole) // 2, len(whole) - 12, len(whole) - 1):
        assert png_refusal(whole[:cut]).startswith("image file is truncated (PNG: the data ends"), cut
    corrupt = {
        "IDAT: CRC error": png_with_bad_idat_crc(),
        "IHDR: invalid": set_length(whole, 8, 100_000),  # would run past the end, but libpng checks IHDR first
        "IDAT: chunk data is too large": set_length(whole, idat, 9_000_000),
        "chunk length out of range": set_length(whole, idat, 3_000_000_000),
        "invalid chunk type": whole[:idat] + bytes(12) + whole[idat:],
    }
    for reason, data in corrupt.items():
        assert png_refusal(data) == f"corrupt image data (PNG: {reason})", reason
    assert png_refusal(zeroed_tail(whole)).startswith("corrupt image data (PNG: ")
    assert png_refusal(set_length(whole, len(whole) - 12, 5)).startswith("image file is truncated"), "IEND length 5"
