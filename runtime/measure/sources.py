"""What fundus-measure reads: mask files, folders of masks, and fundus-infer output folders.

A fundus-infer folder (Python or C++: both write ``summary.json`` with each image's ``file`` and
``outputs.mask``, and the run's ``fov`` setting) gives each mask together with its FOV: ``none``
is the whole image, a mask file is read, ``auto`` is computed again from the photograph (the
``file`` path as recorded, else beside the folder) exactly as fundus-infer computed it. A bare mask
has no photograph: its FOV is the whole image unless ``--fov FILE`` is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import list_images, read_binary_mask, read_image
from fundus_vessels.runtime.outputs_guard import from_printable

MASK_SUFFIX = "_mask"
WHOLE_IMAGE = "whole image"


@dataclass(frozen=True)
class MaskSource:
    """One mask to measure: where it is, its output stem, and how its FOV is found."""

    mask_path: Path
    stem: str
    fov: str  # "none", "auto" (from ``photo``) or a mask file path
    photo: Path | None = None


def _stem(path: Path) -> str:
    return path.stem[: -len(MASK_SUFFIX)] if path.stem.endswith(MASK_SUFFIX) else path.stem


def _entry_source(folder: Path, entry: dict, run_fov: str) -> MaskSource | None:
    """The mask of one summary.json image entry (None when no mask was saved)."""
    name = entry.get("outputs", {}).get("mask")
    if not name:
        return None
    mask_path = folder / name
    stem = _stem(mask_path)
    photo = Path(entry["file"]) if entry.get("file") not in (None, "synthetic") else folder / f"{stem}_input.png"
    if not photo.is_file() and Path(from_printable(str(photo))).is_file():
        photo = Path(from_printable(str(photo)))  # a file name that is not UTF-8, as summary.json spells it
    if not photo.is_file() and (folder / photo.name).is_file():
        photo = folder / photo.name
    return MaskSource(mask_path, stem, run_fov, photo)


def collect_sources_from_entries(
    folder: Path, images: list[dict], run_fov: str
) -> list[tuple[dict, MaskSource | None]]:
    """Each segmented (not refused) image entry of a fundus-infer run with its mask source."""
    return [(e, _entry_source(folder, e, run_fov)) for e in images if not e.get("refused")]


def _from_infer_folder(folder: Path, summary: dict) -> list[MaskSource]:
    pairs = collect_sources_from_entries(folder, summary.get("images", []), str(summary.get("fov", "auto")))
    return [source for _, source in pairs if source is not None]


def collect_sources(inputs: list[str]) -> tuple[list[MaskSource], list[dict]]:
    """Expand each input into mask sources; inputs that hold nothing are failures."""
    sources, failures = [], []
    for item in inputs:
        path = Path(item)
        summary_path = path / "summary.json"
        if path.is_dir() and summary_path.is_file():
            try:
                found = _from_infer_folder(path, json.loads(summary_path.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                failures.append({"file": str(summary_path), "error": f"not a fundus-infer summary ({exc})"})
                continue
        elif path.is_dir():
            found = [MaskSource(p, _stem(p), "none") for p in list_images(path)]
        else:
            found = [MaskSource(path, _stem(path), "none")]
        if not found:
            failures.append({"file": item, "error": "holds no vessel masks"})
        sources.extend(found)
    return sources, failures


def load(source: MaskSource, fov_override: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The mask, its FOV (None: whole image) and a word on where the FOV came from."""
    mask = read_binary_mask(source.mask_path)
    setting = source.fov if fov_override == "auto" else fov_override
    if setting == "none":
        return mask, None, WHOLE_IMAGE
    if setting == "auto":
        if source.photo is None or not source.photo.is_file():
            raise ValueError(f"{source.mask_path}: photograph {source.photo} for the auto FOV not found; give --fov")
        return mask, fov_from_image(read_image(source.photo)), f"auto from {source.photo}"
    fov = read_binary_mask(setting)
    if fov.shape != mask.shape:
        raise ValueError(
            f"{source.mask_path}: FOV {setting} is {fov.shape[1]}x{fov.shape[0]}, mask {mask.shape[1]}x{mask.shape[0]}"
        )
    return mask, fov, setting
