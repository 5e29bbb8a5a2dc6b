"""Score checkpoints on their validation images, one row per dataset (selection never sees a test image).

    python scripts/validation_by_dataset.py runs/multicamera/best.pt runs/ft-drive2/best.pt \
        [--data-root ../shared/data] [--json OUT.json]

For each checkpoint and each dataset of its validation split: pooled FOV MIoU, F1 and AUC at the
checkpoint's threshold, and the best F1 over thresholds 0.30…0.70 (what a per-camera threshold could
reach). Issue 21 scored its DRIVE-weighted and 96-px fine-tunes with it (none beat the default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train.checkpoint import load_model
from fundus_vessels.train.evaluate import evaluate_samples
from fundus_vessels.train.threshold import CANDIDATES, validation_samples


def score(checkpoint: Path, data_root: Path) -> list[dict]:
    """One row per dataset of ``checkpoint``'s validation split."""
    model, ckpt = load_model(checkpoint)
    preprocess = PreprocessConfig.from_dict(ckpt["preprocess"])
    threshold = float(ckpt.get("threshold", ckpt.get("config", {}).get("threshold", 0.5)))
    samples = validation_samples(ckpt, data_root)
    rows = []
    for dataset in sorted({s.dataset for s in samples}):
        chosen = [s for s in samples if s.dataset == dataset]
        metrics = evaluate_samples(
            model, chosen, preprocess, ckpt["tiling"], threshold, torch.device("cpu"), sweep=CANDIDATES
        )
        pooled, sweep = metrics["fov"]["pooled"], metrics["fov"]["threshold_sweep"]
        best = max(sweep, key=lambda row: row["f1"])
        rows.append(
            {
                "checkpoint": str(checkpoint),
                "dataset": dataset,
                "images": len(chosen),
                "threshold": threshold,
                "miou": pooled["miou"],
                "f1": pooled["f1"],
                "auc": pooled["auc"],
                "best_f1": best["f1"],
                "best_f1_threshold": best["threshold"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = [row for checkpoint in args.checkpoints for row in score(checkpoint, args.data_root)]
    print(f"{'checkpoint':40} {'dataset':7} {'n':>2} {'thr':>5} {'MIoU':>7} {'F1':>7} {'AUC':>7} {'bestF1':>7} @")
    for r in rows:
        print(
            f"{r['checkpoint']:40} {r['dataset']:7} {r['images']:2d} {r['threshold']:5.2f} {r['miou']:7.4f} "
            f"{r['f1']:7.4f} {r['auc']:7.4f} {r['best_f1']:7.4f} {r['best_f1_threshold']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    return 0 if np.isfinite([r["f1"] for r in rows]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
