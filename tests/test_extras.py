"""A command whose optional dependency is missing says which extra to install, in one line, exit 2.

Each case runs the command in a subprocess whose ``sys.modules`` holds None for the missing modules
(``import`` then fails as if they were not installed), so the check works in the full dev install.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

# (id, module whose main() is the command, arguments, modules made missing, extra named)
CASES = [
    ("measure", "fundus_vessels.runtime.measure.cli", ["{tmp}", "-o", "{tmp}/out"], ["skan"], "measure"),
    ("measure-no-scipy", "fundus_vessels.runtime.measure.cli", ["{tmp}", "-o", "{tmp}/out"], ["scipy"], "measure"),
    ("infer-measure", "fundus_vessels.runtime.cli", ["--demo", "--measure", "-o", "{tmp}/out"], ["skan"], "measure"),
    (
        "infer-dicom-seg",
        "fundus_vessels.runtime.cli",
        ["--demo", "--save", "mask,dicom-seg", "-o", "{tmp}/out"],
        ["highdicom"],
        "clinic",
    ),
    (
        "infer-triton",
        "fundus_vessels.runtime.cli",
        ["--demo", "--backend", "triton", "--url", "grpc://127.0.0.1:1", "-o", "{tmp}/out"],
        ["tritonclient"],
        "triton",
    ),
    (
        "infer-torch",
        "fundus_vessels.runtime.cli",
        ["--demo", "--backend", "torch", "-o", "{tmp}/out"],
        ["torch"],
        "train",
    ),
    ("infer-watch", "fundus_vessels.runtime.cli", ["--watch", "{tmp}", "-o", "{tmp}/out"], ["watchdog"], "clinic"),
    ("batch", "fundus_vessels.runtime.batch.cli", ["{tmp}/in.png", "-o", "{tmp}/out"], ["ray"], "ray"),
    ("calib", "fundus_vessels.calib.cli", ["--bundle", "{tmp}", "--data-root", "{tmp}"], ["onnx"], "calib"),
    (
        "calib-report",
        "fundus_vessels.calib.cli",
        ["report", "--bundle", "{tmp}", "--data-root", "{tmp}"],
        ["onnx"],
        "calib",
    ),
    ("train", "fundus_vessels.train.cli", ["-o", "run"], ["torch"], "train"),
    ("export", "fundus_vessels.export.cli", ["fp16", "--bundle", "{tmp}"], ["onnx"], "export"),
]

RUN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
import importlib
sys.exit(importlib.import_module(sys.argv[2]).main(sys.argv[3:]))
"""


@pytest.mark.parametrize(("module", "args", "missing", "extra"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_missing_extra_is_one_sentence_and_exit_2(
    module: str, args: list[str], missing: list[str], extra: str, tmp_path: Path
) -> None:
    write_image(tmp_path / "in.png", make_synthetic_fundus(64, 64).image_rgb)
    argv = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", RUN, ",".join(missing), module, *argv], capture_output=True, text=True, timeout=120
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"needs the '{extra}' extra ({missing[0]} is not installed)" in lines[0], lines[0]
    assert lines[0].endswith(f"pip install 'fundus-vessels[{extra}]'") or "(or use" in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "refused before any work"


def test_calib_help_needs_no_onnx() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, "onnx", "fundus_vessels.calib.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--bundle" in proc.stdout, proc.stderr[-2000:]


def test_fundus_infer_loads_no_measure_module() -> None:
    """The base install has no scipy, scikit-image or skan: fundus-infer must not import them."""
    code = (
        "import sys; from fundus_vessels.runtime import cli; "
        "print(sorted(m for m in ('scipy', 'skimage', 'skan', 'onnx', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
