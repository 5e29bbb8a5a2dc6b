"""Checkpoints: one dict (model, optimiser, scheduler, epoch, step, config, seed…), written atomically.

Keys every checkpoint has, relied on by ``export`` and ``train.evaluate``:
``model`` (state dict), ``model_spec`` (``{"name", "kwargs"}`` for :func:`train.models.build_model`),
``preprocess`` (:class:`runtime.preprocess.PreprocessConfig` as a dict), ``tiling``
(``{"tile", "overlap"}``), ``config`` (the resolved training config), ``epoch``, ``step``, ``seed``.
Training checkpoints add ``optimizer``, ``scheduler``, ``scaler``, ``history`` and ``best``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from fundus_vessels.runtime.imageio import atomic_output, stale_temporaries
from fundus_vessels.runtime.scale import ScaleConfig
from fundus_vessels.train.models import build_model

CHECKPOINT_NAMES = ("last.pt", "best.pt")


class CheckpointError(ValueError):
    """A checkpoint that is missing or unreadable, with what to do about it."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict onto the CPU; a clear error names a missing or broken file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{p}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(ckpt, dict) and "threshold" not in ckpt:
        ckpt["threshold"] = float(ckpt.get("config", {}).get("threshold", 0.5))
    return ckpt


def load_resume_checkpoint(out: Path) -> dict:
    """``out/last.pt`` for ``--resume``; a missing or broken file says what to do instead."""
    path = Path(out) / "last.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: nothing to resume (the run stopped before its first checkpoint, or --out is wrong); "
            "start the run again without --resume"
        )
    try:
        return load_checkpoint(path)
    except ValueError as exc:
        raise CheckpointError(
            f"{exc}; the file is damaged: delete it and start again without --resume "
            f"(best.pt in {path.parent} holds the best weights so far)"
        ) from exc


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete temporary checkpoint files left by a run killed while saving; returns what was removed."""
    removed = [tmp for name in CHECKPOINT_NAMES for tmp in stale_temporaries(Path(out) / name)]
    for tmp in removed:
        tmp.unlink(missing_ok=True)
    return removed


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint in eval mode: ``(model, checkpoint_dict)``."""
    ckpt = load_checkpoint(path)
    for key in ("model", "model_spec", "preprocess", "tiling"):
        if key not in ckpt:
            raise ValueError(f"{path}: checkpoint lacks {key!r}")
    model = build_model(ckpt["model_spec"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def checkpoint_scale(ckpt: dict) -> ScaleConfig:
    """The scale a checkpoint was trained at: its config's ``scale_reference`` (0, absent: native scale)."""
    return ScaleConfig(reference_diameter=float(ckpt.get("config", {}).get("scale_reference", 0.0)))
