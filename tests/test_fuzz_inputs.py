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
