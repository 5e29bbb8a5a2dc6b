"""Where the images of DRIVE and CHASE_DB1 live, and loading one as (photo, truth, FOV)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.fov import fov_from_image
from runtime.imageio import read_binary_mask, read_image

DATASETS = ("drive", "chase")
CHASE_SUBJECTS = {"training": range(1, 11), "test": range(11, 15)}


@dataclass(frozen=True)
class Sample:
    """One photograph with its 1st-observer label and FOV mask (``None``: computed from the photo)."""

    name: str
    image: Path
    label: Path | None
    mask: Path | None

    def load(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(photo RGB, truth or None, FOV)``."""
        photo = read_image(self.image)
        truth = read_binary_mask(self.label) if self.label is not None and self.label.is_file() else None
        fov = read_binary_mask(self.mask) if self.mask is not None else fov_from_image(photo)
        return photo, truth, fov


def _require_dir(folder: Path) -> Path:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: dataset folder not found (check --data-root)")
    return folder


def drive_samples(root: str | os.PathLike, split: str) -> list[Sample]:
    """DRIVE ``training`` (21–40) or ``test`` (01–20) in its original layout under ``ROOT/DRIVE``."""
    base = _require_dir(Path(root) / "DRIVE" / split)
    samples = []
    for image in sorted(_require_dir(base / "images").glob(f"*_{split}.tif")):
        number = image.name.split("_")[0]
        samples.append(
            Sample(
                f"drive/{number}",
                image,
                base / "1st_manual" / f"{number}_manual1.gif",
                base / "mask" / f"{number}_{split}_mask.gif",
            )
        )
    if not samples:
        raise FileNotFoundError(f"{base / 'images'}: no DRIVE {split} images (NN_{split}.tif)")
    return samples


def chase_samples(root: str | os.PathLike, split: str) -> list[Sample]:
    """CHASE_DB1 (flat folder ``ROOT/CHASEDB1``): subjects 01–10 train, 11–14 test; FOV from the photo."""
    base = _require_dir(Path(root) / "CHASEDB1")
    subjects = CHASE_SUBJECTS[split]
    samples = []
    for image in sorted(base.glob("Image_*.jpg")):
        match = re.fullmatch(r"Image_(\d+)([LR])", image.stem)
        if match and int(match.group(1)) in subjects:
            samples.append(Sample(f"chase/{image.stem}", image, base / f"{image.stem}_1stHO.png", None))
    if not samples:
        raise FileNotFoundError(
            f"{base}: no CHASE_DB1 {split} images (Image_NNX.jpg, subjects {subjects.start}–{subjects.stop - 1})"
        )
    return samples


def samples(root: str | os.PathLike, dataset: str, split: str) -> list[Sample]:
    """Samples of ``dataset`` (``drive`` or ``chase``) and ``split`` (``training`` or ``test``)."""
    if dataset == "drive":
        return drive_samples(root, split)
    if dataset == "chase":
        return chase_samples(root, split)
    raise ValueError(f"unknown dataset {dataset!r}; choose from {list(DATASETS)}")
