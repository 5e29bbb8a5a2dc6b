"""Calibration tiles: real preprocessed 256×256 crops covering FOV interior, border and background.

Every candidate tile on a regular grid is classed by how much of it lies inside the FOV; a
fixed share of the set is drawn from each class with a seeded generator, so the same seed and
data always give the same tiles. Images are split (also by seed) into calibration images and
held-out images, whose tiles the accuracy gate uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from fundus_vessels.runtime.datasets import dataset_files, split_groups
from fundus_vessels.runtime.preprocess import PreprocessConfig, preprocess
from fundus_vessels.runtime.scale import ScaleConfig, decide_scale, resample
from fundus_vessels.runtime.tiling import make_grid, pad_to_grid

# share of the set drawn from each class; a class without candidates passes its share on
REGION_SHARES = {"interior": 0.5, "border": 0.3, "background": 0.2}
INTERIOR_MIN_FOV = 0.98  # at least this fraction of the tile inside the FOV
BORDER_MIN_FOV = 0.8  # at least this fraction inside: border; less (>= a fifth surround): background
CANDIDATE_STRIDE = 32
HELDOUT_FRACTION = 0.2


@dataclass
class TileSet:
    """Tiles (n, 1, t, t) float32, their FOV crops (n, t, t) and where each came from."""

    tiles: np.ndarray
    fov: np.ndarray
    origins: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    def region_counts(self) -> dict[str, int]:
        return {r: sum(o["region"] == r for o in self.origins) for r in REGION_SHARES}


@dataclass
class Image:
    """One preprocessed plane and its FOV, padded to whole tiles; ``dataset``/``group`` for the held-out split."""

    name: str
    plane: np.ndarray
    fov: np.ndarray
    dataset: str = "folder"
    group: str = ""  # "": the image is its own group

    def __post_init__(self) -> None:
        self.group = self.group or self.name


def region_of(fov_fraction: float) -> str:
    if fov_fraction >= INTERIOR_MIN_FOV:
        return "interior"
    return "border" if fov_fraction >= BORDER_MIN_FOV else "background"


def candidates(image: Image, tile: int) -> dict[str, list[tuple[int, int]]]:
    """Grid tile origins of an image grouped by region class."""
    found: dict[str, list[tuple[int, int]]] = {r: [] for r in REGION_SHARES}
    height, width = image.plane.shape
    for y in range(0, height - tile + 1, CANDIDATE_STRIDE):
        for x in range(0, width - tile + 1, CANDIDATE_STRIDE):
            found[region_of(float(image.fov[y : y + tile, x : x + tile].mean()))].append((y, x))
    return found


def quotas(count: int, available: dict[str, int]) -> dict[str, int]:
    """Tiles per region: ``count`` split by :data:`REGION_SHARES`, capped by what exists."""
    want = {r: round(count * share) for r, share in REGION_SHARES.items()}
    want["interior"] += count - sum(want.values())
    take = {r: min(want[r], available[r]) for r in REGION_SHARES}
    for region in REGION_SHARES:  # hand shortfalls to classes that still have tiles
        spare = count - sum(take.values())
        take[region] += min(spare, available[region] - take[region])
    return take


def sample_tiles(images: list[Image], count: int, tile: int, rng: np.random.Generator) -> TileSet:
    """``count`` tiles drawn across ``images`` by region quota (deterministic for a generator state)."""
    pool: dict[str, list[tuple[int, int, int]]] = {r: [] for r in REGION_SHARES}
    for index, image in enumerate(images):
        for region, origins in candidates(image, tile).items():
            pool[region] += [(index, y, x) for y, x in origins]
    take = quotas(count, {r: len(v) for r, v in pool.items()})
    chosen = []
    for region, n in take.items():
        picks = rng.choice(len(pool[region]), size=n, replace=False) if n else []
        chosen += [(*pool[region][i], region) for i in sorted(picks)]
    tiles = np.stack([images[i].plane[y : y + tile, x : x + tile] for i, y, x, _ in chosen])[:, None]
    fov = np.stack([images[i].fov[y : y + tile, x : x + tile] for i, y, x, _ in chosen])
    origins = [{"image": images[i].name, "y": y, "x": x, "region": r} for i, y, x, r in chosen]
    return TileSet(tiles.astype(np.float32), fov, origins)


def load_images(
    data_root: str | os.PathLike,
    datasets: list[str],
    config: PreprocessConfig,
    tile: int,
    scale: ScaleConfig | None = None,
) -> list[Image]:
    """Preprocessed TRAINING images of ``datasets`` with their FOV, padded to at least one tile.

    With ``scale`` each photograph is first resampled to the model's scale, as the runtime does.
    """
    images = []
    for dataset in datasets:
        for sample in dataset_files(data_root, dataset, "training"):
            photo, _, fov = sample.load()
            factor = decide_scale(fov, scale).factor if scale is not None else 1.0
            photo, fov = resample(photo, factor), resample(fov, factor, "mask")
            grid = make_grid(fov.shape, tile, 0)
            plane = pad_to_grid(preprocess(photo, config), grid)
            images.append(Image(sample.name, plane, pad_to_grid(fov, grid), sample.dataset, sample.group))
    return images


def split_images(images: list[Image], seed: int) -> tuple[list[Image], list[Image]]:
    """(calibration images, held-out images): the training split's rule (:func:`split_groups`), ~20 % held out.

    A CHASE subject's two eyes fall on the same side, as in training's validation split.
    """
    return split_groups(images, HELDOUT_FRACTION, seed)


def calibration_sets(
    data_root: str | os.PathLike,
    datasets: list[str],
    config: PreprocessConfig,
    tile: int,
    count: int,
    seed: int,
    scale: ScaleConfig | None = None,
) -> tuple[TileSet, TileSet]:
    """(calibration tiles, held-out check tiles) from the training images of ``datasets`` (at ``scale``)."""
    rng = np.random.default_rng(seed)
    calibration, heldout = split_images(load_images(data_root, datasets, config, tile, scale), seed)
    if not heldout:
        raise ValueError("need at least two training images per dataset to hold some out for the accuracy check")
    return sample_tiles(calibration, count, tile, rng), sample_tiles(heldout, max(8, count // 4), tile, rng)
