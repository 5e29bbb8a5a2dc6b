"""Training pipeline: config validation, datasets, exact resume, DDP over gloo, evaluation outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.train.checkpoint import load_checkpoint
from fundus_vessels.train.config import ConfigError, resolve_config
from fundus_vessels.train.datasets import (
    DatasetError,
    PatchSampler,
    PreparedImage,
    load_datasets,
    load_drive,
    split_validation,
)
from fundus_vessels.train.models import build_model
from fundus_vessels.train.run import main as train_main

REPO = Path(__file__).resolve().parent.parent


def make_folder_dataset(root: Path, count: int = 4, size: int = 96) -> Path:
    """Small photographs with dark lines (vessels) on a bright disc, with matching labels."""
    rng = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.zeros((size, size, 3), np.uint8)
        cv2.circle(image, (size // 2, size // 2), size // 2 - 2, (200, 90, 40), -1)
        label = np.zeros((size, size), np.uint8)
        for _ in range(4):
            p1, p2 = rng.integers(10, size - 10, 2), rng.integers(10, size - 10, 2)
            cv2.line(image, tuple(map(int, p1)), tuple(map(int, p2)), (120, 40, 20), 2)
            cv2.line(label, tuple(map(int, p1)), tuple(map(int, p2)), 255, 2)
        write_image(root / "images" / f"img{i}.png", image)
        write_image(root / "labels" / f"img{i}.png", label)
    return root


TINY = [
    "--width",
    "0.125",
    "--patch-size",
    "32",
    "--batch-size",
    "2",
    "--samples-per-epoch",
    "8",
    "--tile",
    "64",
    "--overlap",
    "16",
    "--val-fraction",
    "0.25",
    "--log-every",
    "1",
    "--threads",
    "1",
    "--checkpoint-every",
    "1",
]


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "folder:" + str(make_folder_dataset(tmp_path_factory.mktemp("data")))


def test_config_rejects_unknown_key_and_bad_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve_config("improved", str(bad), {})
    with pytest.raises(ConfigError, match="bad value for lr"):
        resolve_config("improved", None, {"lr": "fast"})
    with pytest.raises(ConfigError, match="patch_size"):
        resolve_config("improved", None, {"patch_size": 50})


def test_dataset_weights_scale_each_datasets_share_of_patches() -> None:
    config = resolve_config("improved", None, {"dataset_weights": "drive=3,stare=0.5"})
    assert config.weight_of() == {"drive": 3.0, "stare": 0.5}
    for bad in ("drive", "drive=x", "drive=0", "drive=-1", "drive=nan"):
        with pytest.raises(ConfigError, match="dataset_weights must be NAME=W"):
            resolve_config("improved", None, {"dataset_weights": bad})
    fov = np.ones((64, 64), bool)
    plane, label = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.uint8)
    images = [PreparedImage(f"{d}{i}", plane, label, fov, d) for d in ("drive", "chase", "stare") for i in range(2)]
    weights = PatchSampler(images, 32, 0, False, config.weight_of()).weights
    assert np.allclose(weights, np.array([3, 3, 1, 1, 0.5, 0.5]) / 9.0)
    assert np.allclose(PatchSampler(images, 32, 0, False).weights, 1 / 6)


def test_presets_follow_the_paper() -> None:
    improved = resolve_config("improved", None, {})
    assert (improved.activation, improved.optimizer, improved.lr, improved.weight_decay, improved.batch_size) == (
        "leaky_relu",
        "adam",
        1e-3,
        1e-4,
        4,
    )
    unet = resolve_config("unet", None, {})
    assert (unet.activation, unet.optimizer) == ("relu", "sgd")
    assert resolve_config("fcn", None, {}).model == "fcn"


def test_cli_refuses_bad_config_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_main(["--preset", "improved", "--batch-size", "0", "--out", str(tmp_path / "r")]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_folder_dataset_errors_name_the_path(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "d", count=2)
    (root / "labels" / "img1.png").unlink()
    with pytest.raises(DatasetError, match=r"unpaired.*img1"):
        load_datasets([f"folder:{root}"], tmp_path)
    (root / "labels" / "img1.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"img1\.png"):
        load_datasets([f"folder:{root}"], tmp_path)
    with pytest.raises(DatasetError, match="DRIVE"):
        load_drive(tmp_path / "nowhere", "training")


def test_unet_shapes_and_paper_widths() -> None:
    model = build_model({"name": "unet", "kwargs": {"width": 1.0}})
    widths = [enc[0].out_channels for enc in model.encoders]
    assert widths == [32, 64, 128, 256, 512]
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.modules())
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    fcn = build_model({"name": "fcn", "kwargs": {"width": 0.125}})
    assert fcn(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)


def test_resume_continues_exactly(tmp_path: Path, folder_data: str) -> None:
    args = ["--preset", "improved", "--data", folder_data, *TINY, "--epochs", "2", "--seed", "3"]
    assert train_main([*args, "--out", str(tmp_path / "straight")]) == 0
    # the same run "killed" after 3 steps, then resumed to the end
    assert train_main([*args, "--max-steps", "3", "--out", str(tmp_path / "resumed")]) == 0
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 3
    assert train_main([*args, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][key], rtol=0, atol=1e-6, msg=key)
    out = tmp_path / "straight"
    for name in ("config.yaml", "log.jsonl", "best.pt", "loss_curve.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["fov"]["pooled"]["miou"] <= 1.0
    assert list((out / "val" / "panels").glob("*.png"))


def test_init_starts_from_a_checkpoint_and_refuses_another_architecture(
    tmp_path: Path, folder_data: str, capsys: pytest.CaptureFixture
) -> None:
    args = ["--preset", "improved", "--data", folder_data, *TINY, "--epochs", "1", "--seed", "3"]
    assert train_main([*args, "--max-steps", "1", "--out", str(tmp_path / "first")]) == 0
    start = load_checkpoint(tmp_path / "first" / "last.pt")
    # lr 1e-12: the fine-tuned weights stay (almost) where --init put them, far from a random start
    assert (
        train_main(
            [
                *args,
                "--max-steps",
                "1",
                "--lr",
                "1e-12",
                "--init",
                str(tmp_path / "first" / "last.pt"),
                "--out",
                str(tmp_path / "tuned"),
            ]
        )
        == 0
    )
    tuned = load_checkpoint(tmp_path / "tuned" / "last.pt")
    assert tuned["config"]["init"].endswith("last.pt")
    for key, value in start["model"].items():
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(tuned["model"][key], value, rtol=0, atol=1e-6, msg=key)
    wider = [*args, "--width", "0.25", "--init", str(tmp_path / "first" / "last.pt"), "--out", str(tmp_path / "w")]
    assert train_main(wider) == 2
    assert "--init model" in capsys.readouterr().err


def test_torchrun_two_cpu_processes_write_one_set_of_files(tmp_path: Path, folder_data: str) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "fundus_vessels.train.run",
        "--preset",
        "improved",
        "--data",
        folder_data,
        *TINY,
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"step"' in x]
    step_recs = [r for r in steps if r["kind"] == "step"]
    # 8 samples over 2 ranks with batch 2: 2 steps, each logged once (by rank 0 only)
    assert [r["step"] for r in step_recs] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in step_recs)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        ["best.pt", "config.yaml", "last.pt", "log.jsonl", "loss_curve.png", "metrics.json", "threshold.json"]
    )


def test_validation_split_is_by_subject(data_root: Path) -> None:
    samples = load_datasets(["drive", "chase"], data_root, "train")
    train, val = split_validation(samples, 0.2, seed=0)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(train) + len(val) == 40
    assert {s.dataset for s in val} == {"drive", "chase"}


def test_resume_without_a_usable_checkpoint_says_what_to_do(
    tmp_path: Path, folder_data: str, capsys: pytest.CaptureFixture
) -> None:
    args = ["--preset", "improved", "--data", folder_data, *TINY, "--epochs", "1", "--out", str(tmp_path)]
    assert train_main([*args, "--resume"]) == 2  # killed before its first checkpoint
    assert "nothing to resume" in capsys.readouterr().err
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    assert train_main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "last.pt: not a readable checkpoint" in err and "without --resume" in err
    assert "Traceback" not in err


def test_a_resumed_run_logs_each_step_once_and_removes_stale_temporaries(tmp_path: Path, folder_data: str) -> None:
    args = ["--preset", "improved", "--data", folder_data, *TINY, "--epochs", "2", "--checkpoint-every", "2"]
    out = tmp_path / "run"
    assert train_main([*args, "--max-steps", "3", "--out", str(out)]) == 0
    # as if killed after step 3 (logged) with the last checkpoint at step 2, and mid-save
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 3
    stale = out / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    two = {**ckpt, "step": 2}
    torch.save(two, out / "last.pt")
    assert train_main([*args, "--out", str(out), "--resume"]) == 0
    assert not stale.exists()
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    step_recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in step_recs if r["kind"] == "step"]
    assert logged == sorted(set(logged)), f"steps logged twice: {steps}"
    assert logged[-1] == 8
