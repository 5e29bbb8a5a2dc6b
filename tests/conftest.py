"""Shared fixtures: the dataset root (skip when absent) and a tiny random-weight checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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

    from runtime.preprocess import PreprocessConfig
    from train.checkpoint import save_checkpoint
    from train.models import build_model

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
    from export.onnx_export import export_bundle

    return export_bundle(tiny_checkpoint, tiny_checkpoint.parent / "bundle", static=True, name="tiny-test")
