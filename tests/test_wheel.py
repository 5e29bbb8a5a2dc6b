"""The front door: a wheel built from the checkout installs into a fresh venv and runs, outside the checkout.

Builds ``pip wheel --no-deps``, installs it with its base dependencies (no extras) into a new
virtual environment, then, from a folder holding a user's own ``train.py``, ``export.py`` and
``runtime.py``, runs ``fundus-infer --demo`` with the shipped model and imports the Python API.
Slow (about a minute: it installs numpy, OpenCV and onnxruntime), and needs the package index or a
pip cache with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from fundus_vessels.runtime.bundle import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent
SHADOWS = ("train.py", "export.py", "runtime.py", "calib.py")

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(venv bin folder, user folder)`` with the wheel installed and shadowing files in the folder."""
    root = tmp_path_factory.mktemp("wheel")
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "dist"),
            str(REPO),
        ],
        cwd=root,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list((root / "dist").glob("fundus_vessels-*.whl"))
    assert len(wheels) == 1, wheels
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    install = run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheels[0])], cwd=root)
    if install.returncode != 0 and "No matching distribution" in install.stderr:
        pytest.skip(f"the base dependencies cannot be installed here: {install.stderr[-500:]}")
    assert install.returncode == 0, install.stderr[-3000:]
    user = root / "user"
    user.mkdir()
    for name in SHADOWS:  # a user's scripts named like our old top-level packages
        (user / name).write_text(f"raise SystemExit('shadowed by the user file {name}')\n")
    return bin_dir, user


def clean_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def test_wheel_demo_runs_with_the_shipped_model_outside_the_checkout(installed: tuple[Path, Path]) -> None:
    bin_dir, user = installed
    demo = run([str(bin_dir / "fundus-infer"), "--demo", "-o", "out"], cwd=user, env=clean_env(bin_dir))
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads((user / "out" / "summary.json").read_text())
    assert summary["succeeded"] == 1 and summary["failed"] == 0
    assert "site-packages" in summary["bundle"]["path"], summary["bundle"]  # the model shipped in the wheel
    assert summary["demo"]["miou"] > 0.7  # the synthetic fundus's drawn vessels are found
    assert list((user / "out").glob("*_mask.png"))


def test_wheel_api_imports_and_user_files_shadow_nothing(installed: tuple[Path, Path]) -> None:
    bin_dir, user = installed
    code = (
        "import fundus_vessels.runtime.pipeline as p, fundus_vessels.runtime.bundle as b; "
        "from fundus_vessels.runtime.pipeline import Segmenter; "
        "print(p.__file__); print(b.DEFAULT_BUNDLE); print(b.load_bundle().meta['name'])"
    )
    out = run([str(bin_dir / "python"), "-c", code], cwd=user, env=clean_env(bin_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    module_file, bundle_dir, name = out.stdout.split()
    assert "site-packages" in module_file and "site-packages" in bundle_dir
    assert name == json.loads((REPO / "models" / DEFAULT_MODEL / "model.json").read_text())["name"]


def test_wheel_commands_of_missing_extras_say_which_extra(installed: tuple[Path, Path]) -> None:
    bin_dir, user = installed
    (user / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    commands = {
        ("fundus-train", "-o", "run"): "train",
        ("fundus-export", "fp16", "--bundle", "."): "export",
        ("fundus-calib", "--bundle", ".", "--data-root", "."): "calib",
        ("fundus-measure", ".", "-o", "measured"): "measure",
        ("fundus-infer", "--demo", "--measure", "-o", "out-measure"): "measure",
        ("fundus-batch", "in.png", "-o", "out-batch"): "ray",
    }
    for (command, *args), extra in commands.items():
        out = run([str(bin_dir / command), *args], cwd=user, env=clean_env(bin_dir))
        assert out.returncode == 2, (command, out.stdout[-500:], out.stderr[-1500:])
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-1500:]
        assert f"pip install 'fundus-vessels[{extra}]'" in out.stderr, out.stderr[-1500:]
        assert "Traceback" not in out.stderr


def test_wheel_base_install_is_lean(installed: tuple[Path, Path]) -> None:
    """The runtime alone: at most 450 MB of site-packages (docs/install.md), no measurement stack."""
    bin_dir, _ = installed
    site = Path(
        run(
            [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=bin_dir
        ).stdout.strip()
    )
    size_mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6
    assert size_mb <= 450, f"base install {size_mb:.0f} MB"
    for heavy in ("skan", "numba", "scipy", "skimage", "pandas", "matplotlib", "torch", "onnx"):
        assert not (site / heavy).exists(), heavy
