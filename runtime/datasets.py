"""Where labelled photographs live: DRIVE, CHASE_DB1, STARE and a user's folder, the one description of each layout.

Listing is cheap (paths only, each pair checked to exist); :meth:`SampleFiles.load` reads one
sample. Training loads every sample eagerly from these lists; calibration, its report and the
parity check read them one at a time. :func:`split_groups` is the one held-out split (training's
validation split and calibration's accuracy check): it keeps a CHASE subject's two eyes together.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import IMAGE_SUFFIXES, ImageReadError, list_images, read_binary_mask, read_image

DATASETS = ("drive", "chase", "stare")  # and "folder:PATH"
FOLDER_PREFIX = "folder:"
SPLITS = ("training", "test")
# CHASE_DB1 has no official split; subjects 01-10 train and 11-14 test is the common protocol
CHASE_SUBJECTS = {"training": range(1, 11), "test": range(11, 15)}
CHASE_PATTERN = re.compile(r"^Image_(\d{2})([LR])\.jpg$")
# STARE has no official split: the first ten photographs (sorted by name) train, the last ten test
STARE_SPLIT = {"training": slice(0, 10), "test": slice(10, 20)}
STARE_PATTERN = re.compile(r"^(im\d{4})\.png$")


G = TypeVar("G", bound="Grouped")


class DatasetError(ValueError):
    """A dataset folder that is missing, incomplete or holds unreadable files."""


def read_checked(path: Path, mask: bool = False) -> np.ndarray:
    """A photograph (RGB) or a binary mask; unreadable files raise :class:`DatasetError`."""
    try:
        return read_binary_mask(path) if mask else read_image(path)
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from exc


def check_shapes(name: str, image: np.ndarray, *masks: np.ndarray) -> None:
    """Raise :class:`DatasetError` unless every mask has the image's height and width."""
    for m in masks:
        if m.shape != image.shape[:2]:
            raise DatasetError(f"{name}: label/mask size {m.shape} differs from image size {image.shape[:2]}")


@dataclass(frozen=True)
class SampleFiles:
    """One photograph's files: 1st-observer label and FOV mask (``None``: computed from the photo).

    ``group`` is the unit a validation split must keep whole (a DRIVE image, a CHASE subject's two eyes).
    """

    name: str
    dataset: str
    group: str
    image: Path
    label: Path
    mask: Path | None

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(photo RGB, truth, FOV)``, sizes checked against each other."""
        photo = read_checked(self.image)
        truth = read_checked(self.label, mask=True)
        fov = read_checked(self.mask, mask=True) if self.mask is not None else fov_from_image(photo)
        check_shapes(str(self.image), photo, truth, fov)
        return photo, truth, fov


def _require(path: Path, image: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (paired with {image})")
    return path


def drive_files(root: str | os.PathLike, split: str) -> list[SampleFiles]:
    """DRIVE in its original layout under ``ROOT/DRIVE``: ``training`` (21–40) or ``test`` (01–20)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    base = Path(root) / "DRIVE" / split
    image_dir = base / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: DRIVE {split} images folder not found (check --data-root)")
    files = _paired(
        "drive",
        sorted(image_dir.glob(f"*_{split}.tif")),
        key=lambda image: image.name.split("_")[0],
        label=lambda number: base / "1st_manual" / f"{number}_manual1.gif",
        mask=lambda number: base / "mask" / f"{number}_{split}_mask.gif",
    )
    if not files:
        raise DatasetError(f"{image_dir}: no DRIVE {split} images (NN_{split}.tif)")
    return files


def _paired(
    dataset: str,
    images: Sequence[Path],
    key: Callable[[Path], str],
    label: Callable[[str], Path],
    mask: Callable[[str], Path],
) -> list[SampleFiles]:
    """One :class:`SampleFiles` per image (each its own group), its label and mask found from ``key(image)``."""
    files = []
    for image in images:
        stem = key(image)
        name = f"{dataset}_{stem}"
        files.append(SampleFiles(name, dataset, name, image, _require(label(stem), image), _require(mask(stem), image)))
    return files


def chase_files(root: str | os.PathLike, subjects: Sequence[int] = CHASE_SUBJECTS["training"]) -> list[SampleFiles]:
    """CHASE_DB1's flat layout under ``ROOT/CHASEDB1`` (``Image_NNX.jpg`` + ``_1stHO.png``); no FOV masks."""
    base = Path(root) / "CHASEDB1"
    if not base.is_dir():
        raise DatasetError(f"{base}: CHASE_DB1 folder not found (check --data-root)")
    files = []
    for image in sorted(base.glob("Image_*.jpg")):
        match = CHASE_PATTERN.match(image.name)
        if not match or int(match.group(1)) not in subjects:
            continue
        label = _require(image.with_name(image.stem + "_1stHO.png"), image)
        subject = match.group(1)
        files.append(SampleFiles(f"chase_{subject}{match.group(2)}", "chase", f"chase_{subject}", image, label, None))
    if not files:
        raise DatasetError(f"{base}: no CHASE_DB1 images (Image_NNX.jpg) for subjects {list(subjects)}")
    return files


def stare_files(root: str | os.PathLike, split: str) -> list[SampleFiles]:
    """STARE as PNG under ``ROOT/STARE``: ``images/imNNNN.png``, ``labels-ah/imNNNN.ah.png`` (truth), ``mask/``.

    ``split`` picks the first (``training``) or last (``test``) ten photographs in name order.
    """
    base = Path(root) / "STARE"
    image_dir = base / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: STARE images folder not found (check --data-root)")
    images = sorted(p for p in image_dir.glob("im*.png") if STARE_PATTERN.match(p.name))
    files = _paired(
        "stare",
        images[STARE_SPLIT[split]],
        key=lambda image: image.stem,
        label=lambda stem: base / "labels-ah" / f"{stem}.ah.png",
        mask=lambda stem: base / "mask" / f"{stem}_mask.png",
    )
    if not files:
        raise DatasetError(f"{image_dir}: no STARE {split} images (imNNNN.png)")
    return files


def folder_files(root: str | os.PathLike) -> list[SampleFiles]:
    """A user's own data: ``images/`` and ``labels/`` with matching stems, optional ``masks/`` (else FOV computed)."""
    root = Path(root)
    image_dir, label_dir, mask_dir = root / "images", root / "labels", root / "masks"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: folder not found (expected images/ and labels/ under {root})")
    labels = {p.stem: p for p in list_images(label_dir)}
    images = list_images(image_dir)
    unpaired = [p.name for p in images if p.stem not in labels]
    unpaired += [p.name for s, p in labels.items() if s not in {i.stem for i in images}]
    if unpaired:
        raise DatasetError(f"{root}: unpaired images/labels: {', '.join(sorted(unpaired)[:10])}")
    if not images:
        raise DatasetError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    files = []
    for image in images:
        masks = sorted(mask_dir.glob(image.stem + ".*")) if mask_dir.is_dir() else []
        files.append(
            SampleFiles(image.stem, "folder", image.stem, image, labels[image.stem], masks[0] if masks else None)
        )
    return files


def dataset_files(root: str | os.PathLike, dataset: str, split: str) -> list[SampleFiles]:
    """Files of ``dataset`` (``drive``, ``chase``, ``stare`` or ``folder:PATH``) and ``split`` (training or test).

    A folder has no split: it is returned whole for either.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    if dataset == "drive":
        return drive_files(root, split)
    if dataset == "chase":
        return chase_files(root, CHASE_SUBJECTS[split])
    if dataset == "stare":
        return stare_files(root, split)
    if dataset.startswith(FOLDER_PREFIX):
        return folder_files(dataset[len(FOLDER_PREFIX) :])
    raise DatasetError(f"unknown dataset {dataset!r}: use drive, chase, stare or folder:PATH")


class Grouped(Protocol):
    """Anything a held-out split can sort: a dataset name and a group that stays whole."""

    dataset: str
    group: str


SPLIT_SCHEMES = ("per_dataset", "pooled")


def split_groups(
    items: Sequence[G], fraction: float, seed: int, scheme: str = "per_dataset"
) -> tuple[list[G], list[G]]:
    """``(kept, held out)``: a seeded ``fraction`` of each dataset's groups held out, in input order.

    Groups are DRIVE images and CHASE subjects (both eyes together). Each dataset draws from its own
    generator seeded by ``(seed, dataset)``, so ``drive`` and ``drive,chase`` hold out the same DRIVE
    images; a dataset with a single group holds nothing out. ``scheme="pooled"`` is the rule before per-dataset
    generators (one generator drawn through the datasets in name order), kept so that earlier runs (Table 1,
    ``unet-drive-chase``) reproduce.
    """
    if scheme not in SPLIT_SCHEMES:
        raise ValueError(f"unknown split scheme {scheme!r}; choose from {list(SPLIT_SCHEMES)}")
    if fraction <= 0:
        return list(items), []
    held: set[tuple[str, str]] = set()
    pooled = np.random.default_rng(seed)
    for dataset in sorted({item.dataset for item in items}):
        rng = pooled if scheme == "pooled" else np.random.default_rng([seed, zlib.crc32(dataset.encode())])
        groups = sorted({item.group for item in items if item.dataset == dataset})
        n_out = max(1, round(fraction * len(groups))) if len(groups) > 1 else 0
        held |= {(dataset, g) for g in rng.choice(groups, size=n_out, replace=False).tolist()} if n_out else set()
    kept = [item for item in items if (item.dataset, item.group) not in held]
    return kept, [item for item in items if (item.dataset, item.group) in held]
