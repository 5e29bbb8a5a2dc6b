"""What fundus-infer says about its inputs, alike in Python and C++: channel counts, the demo's
entry, truncated TIFFs, one-line usage errors and the --help text."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.image_header import stored_channels
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

# PIL mode, file suffix -> channels the file stores (alpha included)
STORED = {
    "rgba.png": ("RGBA", 4),
    "la.png": ("LA", 2),
    "rgba_tiff.tif": ("RGBA", 4),
    "la_tiff.tif": ("LA", 2),
    "rgb.png": ("RGB", 3),
    "gray.tif": ("L", 1),
}


def run_cpp(binary: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def channel_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("channels")
    rgb = make_synthetic_fundus(96, 96).image_rgb
    alpha = np.full(rgb.shape[:2], 200, np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pixels = {"RGBA": np.dstack([rgb, alpha]), "LA": np.dstack([gray, alpha]), "RGB": rgb, "L": gray}
    for name, (mode, _) in STORED.items():
        Image.fromarray(pixels[mode], mode).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def truncated_tiffs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TIFF cut inside its header, inside its image data and inside its directory (written last)."""
    folder = tmp_path_factory.mktemp("tiff")
    ok, encoded = cv2.imencode(".tif", make_synthetic_fundus(128, 128).image_rgb)
    data = encoded.tobytes()
    assert ok and int.from_bytes(data[4:8], "little") > len(data) // 2  # directory after the pixels
    for name, size in {"header": 6, "half": len(data) // 2, "directory": len(data) - 10}.items():
        (folder / f"{name}.tif").write_bytes(data[:size])
    return folder


def test_stored_channels_reads_png_and_tiff_headers(channel_images: Path, tmp_path: Path) -> None:
    assert {name: stored_channels(channel_images / name) for name in STORED} == {n: c for n, (_, c) in STORED.items()}
    cv2.imwrite(str(tmp_path / "x.bmp"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "short.png").write_bytes(b"\x89PNG\r\n")
    assert stored_channels(tmp_path / "x.bmp") is None and stored_channels(tmp_path / "short.png") is None


def test_summary_channels_are_the_files_in_python_and_cpp(
    channel_images: Path, tiny_bundle: Path, cpp_binary: Path, tmp_path: Path
) -> None:
    expected = {name: channels for name, (_, channels) in STORED.items()}
    assert cli.main([str(channel_images), "-o", str(tmp_path / "py"), "--model", str(tiny_bundle), "--quiet"]) == 0
    result = run_cpp(cpp_binary, channel_images, "-o", tmp_path / "cpp", "--model", tiny_bundle, "--quiet")
    assert result.returncode == 0, result.stderr
    for side in ("py", "cpp"):
        summary = json.loads((tmp_path / side / "summary.json").read_text())
        assert {Path(e["file"]).name: e["channels"] for e in summary["images"]} == expected, side


def test_demo_entry_names_the_input_it_wrote(tmp_path: Path) -> None:
    assert cli.main(["--demo", "-o", str(tmp_path), "--quiet"]) == 0
    entry = json.loads((tmp_path / "summary.json").read_text())["images"][0]
    assert entry["file"] == "demo_input.png" and (tmp_path / entry["file"]).is_file()
    assert all(name.startswith("demo_") for name in entry["outputs"].values())


def test_truncated_tiff_is_reported_truncated_by_both(
    truncated_tiffs: Path, tiny_bundle: Path, cpp_binary: Path, tmp_path: Path
) -> None:
    assert cli.main([str(truncated_tiffs), "-o", str(tmp_path / "py"), "--model", str(tiny_bundle), "--quiet"]) == 1
    result = run_cpp(cpp_binary, truncated_tiffs, "-o", tmp_path / "cpp", "--model", tiny_bundle, "--quiet")
    assert result.returncode == 1, result.stderr
    for side in ("py", "cpp"):
        failures = json.loads((tmp_path / side / "summary.json").read_text())["failures"]
        assert sorted(Path(f["file"]).name for f in failures) == ["directory.tif", "half.tif", "header.tif"], side
        for failure in failures:
            assert f"{failure['file']}: image file is truncated (" in failure["error"], (side, failure)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["x.png"], "-o OUTDIR is required"), (["-o", "out"], "no INPUT"), (["x.png", "-o", "out", "--bogus"], "--bogus")],
)
def test_cpp_usage_error_is_one_line_with_a_hint(
    cpp_binary: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run([str(cpp_binary), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fundus-infer: error: ") and message in lines[0], lines
    assert lines[0].endswith("(see fundus-infer --help)")


def test_cpp_help_lists_gif(cpp_binary: Path) -> None:
    text = run_cpp(cpp_binary, "--help").stdout
    assert "GIF" in text and "not supported" not in text
