"""Figures people would rather look at: the loss curve (paper Fig. 4) and result panels (Fig. 5)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fundus_vessels.runtime.imageio import atomic_output


def _save(fig: plt.Figure, path: Path) -> None:
    try:
        with atomic_output(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_loss_curve(log_path: Path, out_path: Path) -> None:
    """Training loss per step (smoothed) and validation MIoU per epoch from the JSON-lines log."""
    steps, losses, val_steps, val_miou = [], [], [], []
    for line in Path(log_path).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "step":
            steps.append(rec["step"])
            losses.append(rec["loss"])
        elif rec.get("kind") == "epoch" and "val_miou" in rec:
            val_steps.append(rec["step"])
            val_miou.append(rec["val_miou"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, color="0.75", lw=0.8, label="training loss (logged steps)")
    if len(losses) >= 5:
        k = max(1, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, color="C0", lw=1.5, label=f"moving mean ({k})")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Training loss")
    if val_miou:
        ax2 = ax.twinx()
        ax2.plot(val_steps, val_miou, "o-", color="C3", label="validation MIoU (FOV)")
        ax2.set_ylabel("validation MIoU")
        ax2.legend(loc="center right")
    ax.legend(loc="upper right")
    _save(fig, Path(out_path))


def plot_panel(
    original: np.ndarray,
    enhanced: np.ndarray,
    label: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    title: str,
    out_path: Path,
) -> None:
    """Original / preprocessed / label / prediction side by side."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    panels = [
        (original, "original", None),
        (enhanced, "preprocessed (gray + CLAHE)", "gray"),
        (label, "label (1st observer)", "gray"),
        (probability >= threshold, f"prediction (p ≥ {threshold})", "gray"),
    ]
    for ax, (img, name, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap=cmap)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    _save(fig, Path(out_path))
