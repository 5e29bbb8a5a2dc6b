"""Issue 23 for the C++ fundus-infer: the same rules and messages as the Python one (tests/test_hardening.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_fixtures import write_synthetic_images
from test_hardening import jpeg_header_bomb, png_header_bomb

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.imageio import ImageReadError, read_image


def run_cpp(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, timeout=120)


def tiff_header_bomb(width: int, height: int) -> bytes:
    """A little-endian TIFF whose first IFD declares ``width`` x ``height`` 8-bit gray pixels, one strip of 8 bytes."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 8 + 4), (278, 4, 1, height), (279, 4, 1, 8)]  # fmt: skip
    ifd = len(entries).to_bytes(2, "little")
    for tag, kind, count, value in entries:
        ifd += tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + count.to_bytes(4, "little")
        ifd += value.to_bytes(4, "little")
    return b"II*\0" + (8).to_bytes(4, "little") + ifd + b"\0" * 4 + b"\0" * 8


def bmp_header_bomb(width: int, height: int) -> bytes:
    header = b"BM" + (54).to_bytes(4, "little") + b"\0" * 4 + (54).to_bytes(4, "little")
    info = (40).to_bytes(4, "little") + width.to_bytes(4, "little") + height.to_bytes(4, "little", signed=True)
    info += (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\0" * 24
    return header + info + b"\0" * 16


def gif_header_bomb(width: int, height: int) -> bytes:
    return b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\0\0\0" + b";"


BOMBS = {
    "png.png": png_header_bomb(20000, 20000),
    "jpeg.jpg": jpeg_header_bomb(65000, 65000),
    "tiff.tif": tiff_header_bomb(40000, 40000),
    "bmp.bmp": bmp_header_bomb(30000, -30000),
    "gif.gif": gif_header_bomb(65535, 65535),
    "pgm.pgm": b"P5\n# a comment\n 123456 654321\n255\n" + b"\0" * 64,
}


@pytest.fixture
def bombs(tmp_path: Path) -> Path:
    folder = tmp_path / "bombs"
    folder.mkdir()
    for name, data in BOMBS.items():
        (folder / name).write_bytes(data)
    return folder


def test_item10_11_both_refuse_header_bombs_alike(cpp_binary: Path, tiny_bundle: Path, bombs: Path, tmp_path) -> None:
    expected = {}
    for path in sorted(bombs.iterdir()):
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        expected[str(path)] = str(caught.value)
        assert "image too large (" in expected[str(path)], expected[str(path)]
    out = tmp_path / "cpp"
    proc = run_cpp(cpp_binary, str(bombs), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert {f["file"]: f["error"] for f in summary["failures"]} == expected
    py_out = tmp_path / "py"
    py = subprocess.run(
        [sys.executable, "-m", "fundus_vessels.runtime", str(bombs), "-o", str(py_out), "--model", str(tiny_bundle),
         "--quiet", "--save", "mask", "--backend", "opencv"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert py.returncode == 1, py.stderr
    assert json.loads((py_out / "summary.json").read_text())["failures"] == summary["failures"]


def test_item10_11_cpp_max_pixels_flag(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    (image,) = write_synthetic_images(tmp_path / "in", count=1)  # 280 x 300
    out = tmp_path / "out"
    common = [str(image), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask"]
    assert run_cpp(cpp_binary, *common, "--max-pixels", "80000").returncode == 1
    error = json.loads((out / "summary.json").read_text())["failures"][0]["error"]
    assert (
        error == f"{image}: image too large (280x300 = 0.1 megapixels; limit 0.1 megapixels, --max-pixels changes it)"
    )
    assert run_cpp(cpp_binary, *common, "--max-pixels", "84000").returncode == 0


def test_item1_cpp_refuses_an_output_folder_that_is_an_input_folder(cpp_binary: Path, tiny_bundle, tmp_path) -> None:
    d = tmp_path / "d"
    a, b = write_synthetic_images(d, count=2)
    a.rename(d / "eye.png")
    b.rename(d / "eye_mask.png")
    before = (d / "eye_mask.png").read_bytes()
    proc = run_cpp(cpp_binary, str(d), "-o", str(d), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 2
    assert b"also an input folder" in proc.stderr
    assert (d / "eye_mask.png").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["eye.png", "eye_mask.png"]


def test_item1_cpp_refuses_an_output_that_is_an_input_file(cpp_binary: Path, tiny_bundle, tmp_path) -> None:
    d = tmp_path / "d"
    a, b = write_synthetic_images(d, count=2)
    eye, user_mask = a.rename(d / "eye.png"), b.rename(d / "eye_mask.png")
    before = user_mask.read_bytes()
    proc = run_cpp(cpp_binary, str(eye), str(user_mask), "-o", str(d), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert user_mask.read_bytes() == before
    summary = json.loads((d / "summary.json").read_text())
    assert summary["failures"] == [
        {"file": str(eye), "error": f"its output eye_mask.png would overwrite the input {user_mask}; choose another -o"}
    ]
    assert [e["file"] for e in summary["images"]] == [str(user_mask)]


def test_item6_cpp_stops_when_the_folder_is_locked(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    (image,) = write_synthetic_images(tmp_path / "in", count=1)
    out = tmp_path / "out"
    out.mkdir()
    fd = lock.acquire(out, "fundus-infer")  # a Python run holds it: the two implementations exclude each other
    try:
        proc = run_cpp(cpp_binary, str(image), "-o", str(out), "--model", str(tiny_bundle), "--quiet")
    finally:
        lock.release(out, fd)
    assert proc.returncode == 2
    assert b"output folder in use by fundus-infer (pid" in proc.stderr
    assert not (out / "summary.json").exists()
    (out / lock.LOCK_NAME).write_text("fundus-infer (pid 1 on gone, since 2020-01-01T00:00:00Z)\n")  # stale
    proc = run_cpp(cpp_binary, str(image), "-o", str(out), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not (out / lock.LOCK_NAME).exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_item3_cpp_writes_utf8_for_a_latin1_name(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (png,) = write_synthetic_images(d, count=1)
    shutil.copy(png, os.path.join(os.fsencode(d), b"caf\xe9.png"))
    out = tmp_path / "out"
    proc = run_cpp(cpp_binary, str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_bytes().decode("utf-8"))
    assert sorted(e["file"] for e in summary["images"]) == sorted([str(png), str(d / "caf\\xe9.png")])


def test_item9_cpp_names_dicom_files_in_a_folder(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    from dicom_fixtures import make_dicom
    from runtime_fixtures import small_fundus

    d = tmp_path / "d"
    d.mkdir()
    make_dicom(d / "eye.dcm", small_fundus(64, 64))
    shutil.copy(d / "eye.dcm", d / "CAMERA0001")  # cameras write DICOM without a suffix
    out = tmp_path / "out"
    proc = run_cpp(cpp_binary, str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 1
    failures = json.loads((out / "summary.json").read_text())["failures"]
    assert [f["file"] for f in failures] == [str(d / "CAMERA0001"), str(d / "eye.dcm")]
    assert all("DICOM is not supported by the C++ binary" in f["error"] for f in failures)


def test_item9_cpp_refuses_an_all_nan_float_tiff(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    from test_hardening import nan_tiff

    d = tmp_path / "d"
    d.mkdir()
    nan_tiff(d / "nan.tif")
    out = tmp_path / "out"
    proc = run_cpp(cpp_binary, str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 1, proc.stderr
    (failure,) = json.loads((out / "summary.json").read_text())["failures"]
    assert failure["error"] == f"{d / 'nan.tif'}: image holds no finite pixel values (all NaN or infinite)"


def test_item13_cpp_fifo_and_deep_model_json(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = run_cpp(cpp_binary, str(fifo), "-o", str(out), "--model", str(tiny_bundle), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert json.loads((out / "summary.json").read_text())["failures"][0]["error"] == f"{fifo}: not a regular file"

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    text = (bundle / "model.json").read_text().rstrip().removesuffix("}")
    (bundle / "model.json").write_text(text + ', "x": ' + "[" * 100000 + "]" * 100000 + "}")
    (image,) = write_synthetic_images(tmp_path / "in", count=1)
    proc = run_cpp(cpp_binary, str(image), "-o", str(tmp_path / "o2"), "--model", str(bundle), "--quiet")
    assert proc.returncode == 2, proc  # was: a segmentation fault
    assert b"model.json: not a model.json (nested too deeply)" in proc.stderr


def test_item15_signed_and_colour_float64_tiffs_same_one_line_message(cpp_binary: Path, tiny_bundle, tmp_path) -> None:
    import cv2
    import numpy as np
    from runtime_fixtures import small_fundus

    d = tmp_path / "d"
    d.mkdir()
    rgb = small_fundus(64, 64)
    for dtype in (np.int8, np.int16, np.int32, np.float64):
        for channels, image in (("rgb", rgb), ("gray", rgb[:, :, 1])):
            assert cv2.imwrite(str(d / f"{channels}_{np.dtype(dtype).name}.tif"), (image // 2).astype(dtype))
    outputs = {}
    for who, argv in {
        "c++": [str(cpp_binary)],
        "python": [sys.executable, "-m", "fundus_vessels.runtime", "--backend", "opencv"],
    }.items():
        out = tmp_path / who
        proc = subprocess.run(
            [*argv, str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask", "--quality",
             "off"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert len(proc.stderr.splitlines()) == 7, proc.stderr  # one line per refused file
        outputs[who] = json.loads((out / "summary.json").read_text())["failures"]
    assert outputs["python"] == outputs["c++"]
    errors = {Path(f["file"]).name: f["error"] for f in outputs["python"]}
    assert sorted(errors) == sorted(p.name for p in d.iterdir() if p.name != "gray_float64.tif")
    assert errors["rgb_int16.tif"].endswith(
        "unsupported pixel type int16 (images are 8- or 16-bit unsigned, or floating point)"
    )
    assert errors["rgb_float64.tif"].endswith(
        "unsupported pixel type float64 with 3 channels (colour images are 8- or 16-bit unsigned, or float32)"
    )
