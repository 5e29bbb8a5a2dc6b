"""Labelled fundus datasets (DRIVE, CHASE_DB1, a plain folder), validation split, patch sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.datasets import (
    CHASE_SUBJECTS,
    DatasetError,
    SampleFiles,
    chase_files,
    dataset_files,
    drive_files,
    split_groups,
)
from fundus_vessels.runtime.preprocess import PreprocessConfig, enhance, normalise
from fundus_vessels.runtime.scale import ScaleConfig, decide_scale, resample, resample_label


@dataclass
class Sample:
    """One labelled photograph: RGB image, vessel label, FOV mask, and a group key for splits."""

    name: str
    image: np.ndarray
    label: np.ndarray
    fov: np.ndarray
    group: str
    dataset: str
    source: Path
    scale: float = 1.0  # factor this sample was resampled by (model scale / photograph scale)


def load_files(files: Sequence[SampleFiles]) -> list[Sample]:
    """Read every listed sample of a public dataset (:mod:`runtime.datasets` knows the layouts)."""
    samples = []
    for f in files:
        image, label, fov = f.load()
        samples.append(Sample(f.name, image, label, fov, f.group, f.dataset, f.image))
    return samples


def load_drive(root: Path, split: str) -> list[Sample]:
    """DRIVE in its original layout: ``split`` is ``training`` (21–40) or ``test`` (01–20)."""
    return load_files(drive_files(root, split))


def load_chase(root: Path, subjects: Sequence[int] = CHASE_SUBJECTS["training"]) -> list[Sample]:
    """CHASE_DB1 flat layout (``Image_NNX.jpg`` + ``_1stHO.png``); FOV computed from the image."""
    return load_files(chase_files(root, subjects))


def load_datasets(names: Sequence[str], root: Path, split: str = "train", scale_reference: float = 0.0) -> list[Sample]:
    """Load and concatenate datasets by name: ``drive``, ``chase``, ``stare`` or ``folder:PATH``.

    ``split="train"`` gives DRIVE 21–40, CHASE subjects 01–10 and STARE's first ten; ``"test"`` gives
    DRIVE 01–20, CHASE 11–14 (absent here) and STARE's last ten. Folders have no split and are always
    returned whole. ``scale_reference > 0`` resamples every sample so its FOV has that diameter
    (:func:`rescale_sample`), as the runtime does at inference.
    """
    samples = load_files(
        [f for name in names for f in dataset_files(root, name, "training" if split == "train" else "test")]
    )
    if scale_reference > 0:
        config = ScaleConfig(reference_diameter=scale_reference)
        samples = [rescale_sample(s, config) for s in samples]
    return samples


def rescale_sample(sample: Sample, config: ScaleConfig) -> Sample:
    """``sample`` at the model's scale: the runtime's factor rule, area-averaged image and label, nearest FOV."""
    factor = decide_scale(sample.fov, config).factor
    if factor == 1.0:
        return sample
    return Sample(
        sample.name,
        resample(sample.image, factor),
        resample_label(sample.label, factor),
        resample(sample.fov, factor, "mask"),
        sample.group,
        sample.dataset,
        sample.source,
        factor,
    )


def split_validation(
    samples: list[Sample], fraction: float, seed: int, scheme: str = "per_dataset"
) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of each dataset's groups (images, or subjects for CHASE) for validation.

    :func:`fundus_vessels.runtime.datasets.split_groups`: runs on ``drive`` and on ``drive,chase``
    validate on the same DRIVE images and can be compared.
    """
    return split_groups(samples, fraction, seed, scheme)


@dataclass
class PreparedImage:
    """A sample after preprocessing: the float model input plane plus label and FOV."""

    name: str
    plane: np.ndarray
    label: np.ndarray
    fov: np.ndarray
    dataset: str = ""


def prepare(samples: list[Sample], config: PreprocessConfig) -> list[PreparedImage]:
    """Run the shared preprocessing once per image."""
    return [
        PreparedImage(s.name, normalise(enhance(s.image, config), config), s.label, s.fov, s.dataset) for s in samples
    ]


class PatchSampler:
    """Deterministic random patches: patch ``index`` of ``epoch`` depends only on (seed, epoch, index).

    Patch centres are drawn inside the FOV; images are padded by reflection so patches near the
    border keep their size. That makes any step reproducible and lets a resumed run continue exactly.
    """

    def __init__(
        self,
        images: list[PreparedImage],
        patch: int,
        seed: int,
        augment: bool,
        dataset_weights: dict[str, float] | None = None,
    ) -> None:
        if not images:
            raise DatasetError("no training images")
        self.images, self.patch, self.seed, self.augment = images, patch, seed, augment
        weight_of = dataset_weights or {}
        areas = np.array([img.fov.sum() * weight_of.get(img.dataset, 1.0) for img in images], dtype=np.float64)
        self.weights = areas / areas.sum()
        self._fov_coords = [np.argwhere(img.fov) for img in images]
        half = patch // 2
        self._padded = [
            (np.pad(img.plane, half, mode="reflect"), np.pad(img.label, half, mode="constant")) for img in images
        ]

    def sample(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(plane (1, P, P) float32, label (P, P) int64)`` for one patch."""
        rng = np.random.default_rng([self.seed, epoch, index])
        k = int(rng.choice(len(self.images), p=self.weights))
        coords = self._fov_coords[k]
        cy, cx = coords[rng.integers(len(coords))]
        plane, label = self._padded[k]
        p = self.patch
        # centre (cy, cx) in image coordinates == top-left (cy, cx) in padded coordinates
        x = plane[cy : cy + p, cx : cx + p]
        y = label[cy : cy + p, cx : cx + p]
        if self.augment:
            x, y = augment_pair(x, y, rng)
        return np.ascontiguousarray(x[None], dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)


def augment_pair(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° rotations and a small brightness/contrast change (input only)."""
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < 0.5:
        x, y = x[::-1], y[::-1]
    k = int(rng.integers(4))
    x, y = np.rot90(x, k), np.rot90(y, k)
    gain, bias = rng.uniform(0.9, 1.1), rng.uniform(-0.1, 0.1)
    return x * gain + bias, y
