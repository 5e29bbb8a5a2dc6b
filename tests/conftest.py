"""Shared fixtures: the dataset root (skip when absent) and a tiny random-weight checkpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build"


def find_data_root() -> Path | None:
    """``FUNDUS_DATA_ROOT``, else ``../shared/data`` beside the repository, if it has DRIVE."""
    env = os.environ.get("FUNDUS_DATA_ROOT")
    candidates = [Path(env)] if env else [REPO.parent / "shared" / "data"]
    for root in candidates:
        if (root / "DRIVE").is_dir():
            return root
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("DRIVE not found: set FUNDUS_DATA_ROOT to a folder holding DRIVE/ (and CHASEDB1/)")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight U-Net (width 0.125) saved in the training checkpoint format."""
    import torch

    from fundus_vessels.runtime.preprocess import PreprocessConfig
    from fundus_vessels.train.checkpoint import save_checkpoint
    from fundus_vessels.train.models import build_model

    torch.manual_seed(0)
    spec = {"name": "unet", "kwargs": {"in_channels": 1, "num_classes": 2, "activation": "leaky_relu", "width": 0.125}}
    model = build_model(spec)
    # give BatchNorm non-trivial running statistics so export parity is a real check
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 1, 64, 64))
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_spec": spec,
            "preprocess": PreprocessConfig().to_dict(),
            "tiling": {"tile": 256, "overlap": 32},
            "config": {"preset": "test", "data": ["synthetic"]},
            "epoch": 0,
            "step": 0,
            "seed": 0,
        },
    )
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path) -> Path:
    """Bundle (model.json, model.onnx, model.static.onnx) exported from ``tiny_checkpoint``."""
    from fundus_vessels.export.onnx_export import export_bundle

    return export_bundle(tiny_checkpoint, tiny_checkpoint.parent / "bundle", static=True, name="tiny-test")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"C++ binary unavailable under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cpp_binary() -> Path:
    """The C++ fundus-infer, (re)built incrementally with CMake."""
    given = os.environ.get("FUNDUS_CPP_BINARY")
    if given:
        return Path(given)
    if shutil.which("cmake") is None:
        _unavailable("cmake not installed (apt-get install cmake g++ libopencv-dev)")
    nice = ["nice"] if shutil.which("nice") else []
    configure = subprocess.run(
        [*nice, "cmake", "-S", str(REPO), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release"],
        capture_output=True,
        text=True,
    )
    if configure.returncode != 0:
        if "OpenCV" in configure.stderr + configure.stdout:
            _unavailable("OpenCV development files not found (apt-get install libopencv-dev)")
        pytest.fail(f"cmake configure failed:\n{configure.stdout}\n{configure.stderr}")
    build = subprocess.run([*nice, "cmake", "--build", str(BUILD_DIR), "-j2"], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"cmake build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}")
    binary = BUILD_DIR / "fundus-infer"
    assert binary.is_file(), f"{binary} not built"
    return binary
