"""The CLI's image outputs: mask, probability and overlay PNGs (the C++ runtime writes the same)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.pictures import overlay_rgb
from fundus_vessels.runtime.pipeline import Result

SAVE_KINDS = ("mask", "prob", "overlay")
DICOM_KINDS = ("dicom-seg",)  # written by the CLI from the DICOM source (fundus_vessels.runtime.dicom), not here


def mask_png(mask: np.ndarray) -> np.ndarray:
    """Boolean mask → uint8 0/255."""
    return mask.astype(np.uint8) * 255


def probability_png(probability: np.ndarray) -> np.ndarray:
    """Probability in [0, 1] → uint8 ``round(p * 255)`` (half to even, like ``cvRound``).

    Bit for bit ``np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)`` on float32 (float32 product,
    saturating ``cvRound``) in one OpenCV pass: 1 ms instead of 27 ms for a 3504x2336 map.
    """
    p = np.asarray(probability, dtype=np.float32)
    return cv2.addWeighted(p, 255.0, p, 0.0, 0.0, dtype=cv2.CV_8U)


def overlay_png(photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photograph (8-bit RGB) with every vessel outlined (:func:`fundus_vessels.runtime.pictures.overlay_rgb`)."""
    return overlay_rgb(photo, mask)


def save_outputs(
    out_dir: Path,
    stem: str,
    photo: np.ndarray,
    result: Result,
    kinds: tuple[str, ...],
    written: list[Path] | None = None,
) -> dict[str, str]:
    """Write ``<stem>_<kind>.png`` for each image kind (others are skipped); returns ``{kind: file name}``.

    Each file is appended to ``written`` once it is complete (the caller removes them if a later step fails).
    """
    render = {
        "mask": lambda: mask_png(result.mask),
        "prob": lambda: probability_png(result.probability),
        "overlay": lambda: overlay_png(photo, result.mask),
    }
    done = {}
    for kind in (k for k in kinds if k in render):
        name = f"{stem}_{kind}.png"
        write_image(out_dir / name, render[kind]())
        done[kind] = name
        if written is not None:
            written.append(out_dir / name)
    return done
