"""The C++ fundus-infer writes Python's results.csv: same columns, same order, same cells.

Both runtimes run the shipped model (C++: OpenCV DNN, Python: its OpenCV backend) with their
default ``--scale auto`` and ``--quality refuse`` on the same inputs:
two photographs (one with a comma in its name), a black frame the gate refuses, a file that is
not an image. Every text cell must be equal; vessel fractions within 1e-3 (masks agree on
>= 99.9 % of pixels, tests/test_cpp_binary.py); seconds differ, both present.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.results_table import BASE_COLUMNS, read_results
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

TEXT_COLUMNS = ("file", "status", "reason", "quality_verdict", "quality_reasons", "scale_factor", "scale_method")


def test_cpp_results_csv_matches_python(cpp_binary: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed, name in enumerate(("left,eye.png", "right.png")):
        write_image(inputs / name, make_synthetic_fundus(300, 320, seed).image_rgb)
    write_image(inputs / "black.png", np.zeros((300, 320, 3), np.uint8))
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    common = [str(inputs), "--quality", "refuse", "--quiet", "--threads", "1"]
    cpp = subprocess.run([str(cpp_binary), *common, "-o", str(tmp_path / "cpp")], capture_output=True, text=True)
    assert cpp.returncode == 5, cpp.stderr  # a failure (1) and a refusal (4)
    assert cli.main([*common, "-o", str(tmp_path / "py"), "--backend", "opencv"]) == 5

    cpp_text, py_text = ((tmp_path / d / "results.csv").read_text() for d in ("cpp", "py"))
    assert cpp_text.splitlines()[0] == py_text.splitlines()[0] == ",".join(BASE_COLUMNS)
    cpp_rows, py_rows = read_results(tmp_path / "cpp" / "results.csv"), read_results(tmp_path / "py" / "results.csv")
    assert [r["status"] for r in py_rows] == ["refused", "ok", "ok", "failed"]
    assert len(cpp_rows) == len(py_rows)
    for cpp_row, py_row in zip(cpp_rows, py_rows, strict=True):
        assert {c: cpp_row[c] for c in TEXT_COLUMNS} == {c: py_row[c] for c in TEXT_COLUMNS}
        if py_row["status"] == "ok":
            assert abs(float(cpp_row["vessel_fraction"]) - float(py_row["vessel_fraction"])) <= 1e-3
            assert float(cpp_row["seconds"]) > 0 and float(py_row["seconds"]) > 0
        else:
            assert cpp_row["vessel_fraction"] == py_row["vessel_fraction"] == ""
    assert '"' + str(inputs / "left,eye.png") + '"' in cpp_text  # quoted as Python's csv quotes it
