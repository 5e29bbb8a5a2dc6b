"""Numeric flags: one rule in Python and C++ (issue 13 items 2 and 7); no NaN/inf written as a JSON number."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.imageio import write_json

BAD = [
    ("--threshold", "nan", "--threshold must be a number in [0, 1]"),
    ("--threshold", "inf", "--threshold must be a number in [0, 1]"),
    ("--threshold", "-inf", "--threshold must be a number in [0, 1]"),
    ("--threshold", "half", "--threshold must be a number in [0, 1]"),
    ("--threshold", "1.5", "--threshold must be a number in [0, 1]"),
    ("--threads", "0", "--threads must be a positive integer"),
    ("--threads", "-1", "--threads must be a positive integer"),
    ("--threads", "nan", "--threads must be a positive integer"),
    ("--batch", "0", "--batch must be a positive integer"),
    ("--batch", "inf", "--batch must be a positive integer"),
    ("--scale", "nan", "factor must be in [0.01, 4]"),
    ("--scale", "-inf", "factor must be in [0.01, 4]"),
    ("--scale", "9", "factor must be in [0.01, 4]"),
    ("--scale", "big", "must be auto, none or a positive number"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD)
def test_python_refuses(flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["x.png", "-o", str(tmp_path / "out"), f"{flag}={value}"]) == 2  # "=": -inf is no option
    err = capsys.readouterr().err.replace("argument ", "").replace(": must", " must")
    assert message in err and repr(value) in err, err
    assert not (tmp_path / "out").exists()


def test_cpp_refuses_alike(cpp_binary: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    for flag, value, message in BAD:
        result = subprocess.run(
            [str(cpp_binary), "x.png", "-o", str(tmp_path / "out"), "--model", str(tiny_bundle), f"{flag}={value}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (flag, value)
        assert message in result.stderr and f"'{value}'" in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(path, {"t": math.nan, "list": [1.0, math.inf, -math.inf], "nested": {"x": 0.5}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"t": None, "list": [1.0, None, None], "nested": {"x": 0.5}}
