"""Choose the vessel threshold on the validation split; it travels in the checkpoint, then in model.json.

    python -m fundus_vessels.train.threshold --checkpoint runs/x/best.pt [--data-root ../shared/data]

The candidates are 0.30, 0.31, …, 0.70; the chosen one maximises pooled FOV MIoU on the images the
checkpoint lists as its validation split (``val_images``), never on a test image. It is written
into the checkpoint (key ``threshold``) and beside it as ``threshold.json`` with the whole sweep.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from fundus_vessels.runtime.datasets import DatasetError
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.metrics import choose_threshold
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train.checkpoint import checkpoint_scale, load_model, save_checkpoint
from fundus_vessels.train.datasets import Sample, load_datasets
from fundus_vessels.train.evaluate import evaluate_samples

CANDIDATES = np.round(np.arange(0.30, 0.7001, 0.01), 2)


def validation_samples(ckpt: dict, data_root: Path) -> list[Sample]:
    """The checkpoint's validation images (by name), read from their datasets."""
    config, names = ckpt.get("config", {}), set(ckpt.get("val_images", []))
    if not names:
        raise DatasetError("checkpoint lists no validation images (trained with val_fraction 0?)")
    loaded = load_datasets(config.get("data", ["drive"]), data_root, "train", checkpoint_scale(ckpt).reference_diameter)
    samples = [s for s in loaded if s.name in names]
    if len(samples) != len(names):
        raise DatasetError(f"{data_root}: found {len(samples)} of the {len(names)} validation images")
    return samples


def choose_on_validation(checkpoint: Path, data_root: Path, device: torch.device | None = None) -> dict:
    """Sweep thresholds on the validation split, store the best in ``checkpoint``; returns the report."""
    device = device or torch.device("cpu")
    model, ckpt = load_model(checkpoint)
    samples = validation_samples(ckpt, data_root)
    preprocess = PreprocessConfig.from_dict(ckpt["preprocess"])
    trained_at = float(ckpt.get("config", {}).get("threshold", 0.5))
    metrics = evaluate_samples(
        model.to(device), samples, preprocess, ckpt["tiling"], trained_at, device, sweep=CANDIDATES
    )
    sweep = metrics["fov"]["threshold_sweep"]
    best = choose_threshold(sweep, "miou")
    report = {
        "checkpoint": str(checkpoint),
        "split": "validation",
        "images": [s.name for s in samples],
        "criterion": "pooled FOV MIoU",
        "threshold": best["threshold"],
        "at_threshold": best,
        "at_training_threshold": metrics["fov"]["pooled"] | {"threshold": trained_at},
        "sweep": sweep,
    }
    save_checkpoint(checkpoint, ckpt | {"threshold": best["threshold"]})
    write_json(Path(checkpoint).with_name("threshold.json"), report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Choose the vessel threshold on the validation split.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint written by fundus-train")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"), help="folder with DRIVE/, CHASEDB1/")
    args = parser.parse_args(argv)
    try:
        report = choose_on_validation(args.checkpoint, args.data_root)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    best, base = report["at_threshold"], report["at_training_threshold"]
    print(
        f"threshold {report['threshold']:.2f}: validation MIoU {best['miou']:.4f} F1 {best['f1']:.4f} "
        f"(at {base['threshold']:.2f}: MIoU {base['miou']:.4f} F1 {base['f1']:.4f})"
    )
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main())
