"""Fuzz: both fundus-infer implementations over the same folder of mutated image files.

A fixed seed makes a few hundred damaged JPEG/PNG/TIFF/GIF/BMP files (tests/fuzz_images.py).
Python and C++ run over the folder with the same bundle and the same DNN (OpenCV); every file must
be segmented identically by both or refused by both, with the file named and the same class of
reason. Neither may crash, hang, print a traceback or a library's raw diagnostic, or leave a
temporary file; summary.json must be valid JSON. FUNDUS_FUZZ_COUNT / FUNDUS_FUZZ_SEED make a
longer run (see tests/fuzz_images.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import find_data_root
from fuzz_images import write_corpus

COUNT = int(os.environ.get("FUNDUS_FUZZ_COUNT", "300"))
SEED = int(os.environ.get("FUNDUS_FUZZ_SEED", "13"))
TIMEOUT_S = 60 + COUNT // 5
PROG = "fundus-infer: "


def reject_constant(name: str) -> None:
    raise ValueError(f"summary.json holds {name}, which is not JSON")


def outcomes(out_dir: Path) -> dict[str, tuple]:
    """file -> ("ok", width, height, channels, bit_depth) or ("refused", reason)."""
    summary = json.loads((out_dir / "summary.json").read_text(), parse_constant=reject_constant)
    assert summary["succeeded"] == len(summary["images"]) and summary["failed"] == len(summary["failures"])
    result = {}
    for entry in summary["images"]:
        result[entry["file"]] = ("ok", entry["width"], entry["height"], entry["channels"], entry["bit_depth"])
    for failure in summary["failures"]:
        assert failure["file"] not in result, f"{failure['file']} both segmented and failed"
        result[failure["file"]] = ("refused", failure["error"])
    return result


def reason_class(reason: str, path: str) -> str:
    """'image file is truncated' from '<path>: image file is truncated (JPEG: ...)'."""
    assert reason.startswith(f"{path}: "), f"reason does not name the file first: {reason!r}"
    return reason[len(path) + 2 :].split(" (")[0]


def check_run(proc: subprocess.CompletedProcess, out_dir: Path, who: str) -> None:
    assert proc.returncode in (0, 1), f"{who} exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, f"{who} printed a traceback:\n{proc.stderr[-3000:]}"
    stray = [line for line in proc.stderr.splitlines() if not line.startswith(PROG)]
    assert not stray, f"{who} printed lines that are not its own: {stray[:5]}"
    left = [p.name for p in out_dir.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not left, f"{who} left temporary files: {left[:5]}"


def test_both_implementations_agree_on_mutated_files(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    files = write_corpus(corpus, COUNT, SEED, find_data_root())
    common = ["--model", str(tiny_bundle), "--quiet", "--save", "mask"]
    py_out, cpp_out = tmp_path / "py", tmp_path / "cpp"
    py = subprocess.run(
        [
            sys.executable,
            "-m",
            "fundus_vessels.runtime",
            str(corpus),
            "-o",
            str(py_out),
            "--backend",
            "opencv",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    cpp = subprocess.run(
        [str(cpp_binary), str(corpus), "-o", str(cpp_out), *common], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    check_run(py, py_out, "python")
    check_run(cpp, cpp_out, "c++")
    py_result, cpp_result = outcomes(py_out), outcomes(cpp_out)
    assert set(py_result) == set(cpp_result) == {str(p) for p in files}

    disagreements, refused, segmented, intact_refused = [], 0, 0, []
    for path in sorted(py_result):
        a, b = py_result[path], cpp_result[path]
        if a[0] != b[0]:
            disagreements.append(f"{Path(path).name}: python {a}, c++ {b}")
        elif a[0] == "refused":
            refused += 1
            if reason_class(a[1], path) != reason_class(b[1], path):
                disagreements.append(f"{Path(path).name}: python {a[1]!r}, c++ {b[1]!r}")
            if "_intact." in path:
                intact_refused.append(path)
        else:
            segmented += 1
            stem = Path(path).stem
            py_mask = cv2.imread(str(py_out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
            cpp_mask = cv2.imread(str(cpp_out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
            if a != b or not np.array_equal(py_mask, cpp_mask):
                disagreements.append(f"{Path(path).name}: segmented differently ({a} vs {b})")
    print(
        f"fuzz: {len(files)} files, both refused {refused}, both segmented {segmented}, disagreements "
        f"{len(disagreements)}"
    )
    assert not disagreements, "\n".join(disagreements[:20])
    assert not intact_refused, f"undamaged files refused: {intact_refused[:5]}"
    assert refused > COUNT // 3 and segmented > 0, "the corpus should hold both kinds"


@pytest.mark.parametrize("seed", [1, 2])
def test_corpus_is_reproducible(tmp_path: Path, seed: int) -> None:
    first = write_corpus(tmp_path / "a", 24, seed, None)
    second = write_corpus(tmp_path / "b", 24, seed, None)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, second, strict=True))


def write_hostile_corpus(folder: Path, count: int, seed: int) -> list[str]:
    """Issue 23's inputs: header bombs of every format at random declared sizes around the pixel cap, signed and
    colour float64 TIFFs, an all-NaN TIFF, a FIFO and a file name that is not UTF-8; returns their summary names."""
    from runtime_fixtures import small_fundus
    from test_cpp_hardening import bmp_header_bomb, gif_header_bomb, tiff_header_bomb
    from test_hardening import jpeg_header_bomb, nan_tiff, png_header_bomb

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    makers = {
        "png": png_header_bomb,
        "jpg": jpeg_header_bomb,
        "tif": tiff_header_bomb,
        "bmp": bmp_header_bomb,
        "gif": gif_header_bomb,
        "pgm": lambda w, h: f"P5\n{w} {h}\n255\n".encode() + bytes(64),
    }
    limits = {"jpg": 65535, "gif": 65535, "bmp": 2**31 - 1}
    for i in range(count):
        suffix = list(makers)[i % len(makers)]
        top = limits.get(suffix, 2**32 - 1)
        # half near the cap (1e8 pixels: 10,000 x 10,000), half anywhere
        side = 10_000 if i % 2 else int(rng.integers(1, top))
        width = int(min(top, max(1, side + rng.integers(-50, 50))))
        height = int(min(top, max(1, 10_000 + rng.integers(-50, 50)))) if i % 2 else int(rng.integers(1, top))
        (folder / f"bomb{i:03d}_{width}x{height}.{suffix}").write_bytes(makers[suffix](width, height))
    rgb = small_fundus(64, 64)
    for dtype in (np.int8, np.int16, np.int32, np.float64):
        name = np.dtype(dtype).name
        assert cv2.imwrite(str(folder / f"rgb_{name}.tif"), (rgb // 2).astype(dtype))
    nan_tiff(folder / "nan.tif")
    os.mkfifo(folder / "fifo.png")
    good = folder / "good.png"
    assert cv2.imwrite(str(good), rgb[:, :, ::-1])
    latin1 = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    Path(os.fsdecode(latin1)).write_bytes(good.read_bytes())
    # a FIFO in a folder is not listed by either (only regular files are); given by name it is refused
    names = [str(p) for p in folder.iterdir() if p.name not in ("caf\udce9.png", "fifo.png")]
    return [*names, str(folder / "caf\\xe9.png")]


def test_both_implementations_agree_on_hostile_files(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    """Issue 23: bombs refused from the header by both, with the same message; nothing hangs or leaks."""
    corpus = tmp_path / "hostile"
    names = write_hostile_corpus(corpus, 60, SEED)
    common = ["--model", str(tiny_bundle), "--quiet", "--save", "mask", "--quality", "off"]
    py_out, cpp_out = tmp_path / "py", tmp_path / "cpp"
    python = [sys.executable, "-m", "fundus_vessels.runtime", "--backend", "opencv"]
    inputs = [str(corpus), str(corpus / "fifo.png")]
    py = subprocess.run([*python, *inputs, "-o", str(py_out), *common], capture_output=True, timeout=300)
    cpp = subprocess.run([str(cpp_binary), *inputs, "-o", str(cpp_out), *common], capture_output=True, timeout=300)
    for proc in (py, cpp):
        proc.stderr = proc.stderr.decode("utf-8")  # every line of ours is UTF-8, whatever the file names
    check_run(py, py_out, "python")
    check_run(cpp, cpp_out, "c++")
    py_result, cpp_result = outcomes(py_out), outcomes(cpp_out)
    assert set(py_result) == set(cpp_result) == {*names, str(corpus / "fifo.png")}
    ours = ("image too large (", "unsupported pixel type", "not a regular file", "no finite pixel values")
    for path in sorted(names):
        a, b = py_result[path], cpp_result[path]
        assert a[0] == b[0], f"{path}: python {a}, c++ {b}"
        if a[0] == "refused" and any(words in a[1] for words in ours):
            assert a == b, f"{path}: python {a}, c++ {b}"  # our own words: the same, word for word
        elif a[0] == "refused":  # a decoder's words (OpenCV 4.6 in C++, the wheel's in Python): the same class
            assert reason_class(a[1], path) == reason_class(b[1], path), f"{path}: python {a}, c++ {b}"
    bombs = [r for f, r in py_result.items() if "/bomb" in f]
    capped = [r for r in bombs if r[0] == "refused" and "image too large (" in r[1]]
    assert len(capped) >= len(bombs) // 2, bombs[:5]
    assert py_result[str(corpus / "fifo.png")] == ("refused", f"{corpus / 'fifo.png'}: not a regular file")
    assert py_result[str(corpus / "caf\\xe9.png")][0] == "ok" == py_result[str(corpus / "good.png")][0]
    print(f"hostile: {len(names)} files, {len(capped)} bombs refused by the pixel cap, 0 disagreements")
