"""What fundus-measure writes: measurements.csv, segments.csv, summary.json and a picture per image."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fundus_vessels.runtime.imageio import atomic_output, write_image
from fundus_vessels.runtime.pictures import colour_bar, dimmed

if TYPE_CHECKING:  # analysis needs the 'measure' extra; fundus-measure imports it after checking
    from fundus_vessels.runtime.measure.analysis import Analysis

MEASUREMENTS_CSV = "measurements.csv"
SEGMENTS_CSV = "segments.csv"
PICTURE_SUFFIX = "_measure.png"
MASK_GRAY = 70
JUNCTION_RGB = (255, 255, 255)
END_POINT_RGB = (255, 60, 60)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as CSV (columns in first-seen order, empty cell for None/nan), atomically."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([[_cell(row.get(c)) for c in columns] for row in rows])


def json_ready(figures: dict) -> dict:
    """``figures`` with nan turned into None (JSON has no nan)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in figures.items()}


def picture(analysis: Analysis, vessels: np.ndarray, photo: np.ndarray | None = None) -> np.ndarray:
    """RGB picture: the vessel map in gray (or the darkened photograph, ``photo``), the centreline
    coloured by segment calibre (turbo colour map from the 5th to the 95th percentile of segment
    calibres, blue thin, red wide), junctions as white rings, free ends as red dots; below it a
    colour bar with the calibres in µm when the pixel size is known, else in pixels."""
    if photo is None:
        image = np.zeros((*vessels.shape, 3), dtype=np.uint8)
        image[vessels] = MASK_GRAY
    else:
        image = dimmed(photo, vessels.shape)
    size = max(1, round(float(analysis.figures["fov_diameter_px"]) / 600.0))
    calibres = np.asarray(analysis.segment_calibres_px, dtype=np.float64)
    low, high = np.percentile(calibres, [5, 95]) if len(calibres) else (0.0, 0.0)
    if len(calibres):
        levels = np.clip((calibres - low) / max(high - low, 1e-9) * 255.0, 0, 255).astype(np.uint8)
        colours = cv2.applyColorMap(levels.reshape(-1, 1), cv2.COLORMAP_TURBO)[:, 0, ::-1]
        for segment, colour in zip(analysis.graph.segments, colours, strict=True):
            points = segment.pixels[:, ::-1].reshape(-1, 1, 2).astype(np.int32)
            cv2.polylines(image, [points], False, tuple(int(c) for c in colour), size)
    for junction in analysis.graph.junctions:
        centre = tuple(int(v) for v in np.round(junction.centre[::-1]))
        cv2.circle(image, centre, 3 * size, JUNCTION_RGB, size)
    for row, col in analysis.graph.end_points:
        cv2.circle(image, (int(col), int(row)), 2 * size, END_POINT_RGB, -1)
    pixel_um = analysis.figures.get("pixel_size_um")
    unit, factor = ("um", float(pixel_um)) if pixel_um else ("px", 1.0)
    title = f"vessel calibre (segment median, 5th-95th percentile), {unit}; rings: junctions, dots: free ends"
    bar = colour_bar(image.shape[1], float(low) * factor, float(high) * factor, unit, title)
    return np.vstack([image, bar])


def write_picture(
    out_dir: Path, stem: str, analysis: Analysis, vessels: np.ndarray, photo: np.ndarray | None = None
) -> str:
    """Write ``<stem>_measure.png`` (over ``photo`` when given); returns its file name."""
    name = f"{stem}{PICTURE_SUFFIX}"
    write_image(out_dir / name, picture(analysis, vessels, photo))
    return name
