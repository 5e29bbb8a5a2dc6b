"""One vessel map in, every figure out: the measure families put together, with their units.

The FOV restricts everything: vessels are ``mask & fov``; without a FOV the whole image is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fundus_vessels.runtime.measure.branching import branching_angle
from fundus_vessels.runtime.measure.calibre import segment_widths, width_map
from fundus_vessels.runtime.measure.centreline import describe
from fundus_vessels.runtime.measure.fractal import box_counting_dimension
from fundus_vessels.runtime.measure.skeleton import VesselGraph, build_graph
from fundus_vessels.runtime.measure.units import Scale, fov_diameter_px, resolve_pixel_size

# segments in the tortuosity statistics: open (not loops) and at least this long (arc, px)
MIN_TORTUOSITY_LENGTH_PER_DFOV = 1.0 / 25.0
MIN_TORTUOSITY_LENGTH_PX = 10.0

Figures = dict[str, float | int | str | None]


@dataclass(frozen=True)
class Analysis:
    """``figures``: the image's row of measurements.csv; ``segments``: its segments.csv rows."""

    figures: Figures
    segments: list[Figures]
    graph: VesselGraph
    segment_calibres_px: list[float]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which the cumulative weight (values sorted) first reaches half the total."""
    if len(values) == 0:
        return math.nan
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def min_tortuosity_length(fov_diameter: float) -> float:
    """Segments shorter than this arc length (px) are left out of the tortuosity statistics."""
    return max(MIN_TORTUOSITY_LENGTH_PX, fov_diameter * MIN_TORTUOSITY_LENGTH_PER_DFOV)


def _as_masks(mask: np.ndarray, fov: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a vessel mask is one plane, got shape {mask.shape}")
    fov = np.ones(mask.shape, dtype=bool) if fov is None else np.asarray(fov).astype(bool)
    if fov.shape != mask.shape:
        raise ValueError(f"FOV mask is {fov.shape[1]}x{fov.shape[0]}, vessel mask is {mask.shape[1]}x{mask.shape[0]}")
    return mask.astype(bool) & fov, fov


def _segment_rows(graph: VesselGraph, width_px: np.ndarray, scale: Scale) -> tuple[list[Figures], list, list]:
    """Per segment: its row, its smoothed curve with arc positions, its widths (px)."""
    rows, curves, widths = [], [], []
    min_length = min_tortuosity_length(scale.fov_diameter_px)
    for number, segment in enumerate(graph.segments):
        shape, curve, along = describe(segment.pixels, scale.fov_diameter_px)
        width = segment_widths(segment, width_px)
        low, median, high = np.percentile(width, [25, 50, 75])
        kind = segment.kind
        row: Figures = {"segment": number, "kind": kind}
        row.update(zip(("start_row", "start_col"), map(int, segment.pixels[0]), strict=True))
        row.update(zip(("end_row", "end_col"), map(int, segment.pixels[-1]), strict=True))
        row.update(scale.lengths("length", shape.arc_px))
        row.update(scale.lengths("chord", shape.chord_px))
        row["tortuosity"] = shape.tortuosity
        row["turning_rad"] = shape.turning_rad
        row.update(scale.per_length("curvature_rad", shape.curvature_per_px))
        row.update(scale.lengths("calibre_median", float(median)))
        row.update(scale.lengths("calibre_iqr", float(high - low)))
        row["in_tortuosity"] = int(kind != "loop" and shape.arc_px >= min_length)
        rows.append(row)
        curves.append((curve, along))
        widths.append(width)
    return rows, curves, widths


def _graph_figures(
    graph: VesselGraph, rows: list[Figures], curves: list, width_px: np.ndarray, scale: Scale
) -> Figures:
    calibres = [float(r["calibre_median_px"]) for r in rows]
    lengths = [float(r["length_px"]) for r in rows]
    angles = []
    for junction in graph.junctions:
        row, col = np.round(junction.centre).astype(int)
        junction_width = float(width_px[row, col])
        angles.append(branching_angle(junction, curves, calibres, lengths, junction_width, scale.fov_diameter_px))
    angles = np.asarray([a for a in angles if not math.isnan(a)])
    degrees = [len(j.ends) for j in graph.junctions]
    figures: Figures = {}
    figures.update(scale.lengths("total_length", float(sum(lengths))))
    figures["segment_count"] = len(rows)
    figures["junction_count"] = len(graph.junctions)
    figures["bifurcation_count"] = sum(d == 3 for d in degrees)
    figures["crossing_count"] = sum(d >= 4 for d in degrees)
    figures["end_point_count"] = len(graph.end_points)
    figures["branching_angle_deg_mean"] = float(angles.mean()) if len(angles) else math.nan
    figures["branching_angle_deg_median"] = float(np.median(angles)) if len(angles) else math.nan
    return figures


def _calibre_figures(widths: list[np.ndarray], scale: Scale) -> Figures:
    values = np.concatenate(widths) if widths else np.empty(0)
    figures: Figures = {}
    stats = {
        "median": np.median,
        "mean": np.mean,
        "p10": lambda v: np.percentile(v, 10),
        "p90": lambda v: np.percentile(v, 90),
    }
    for name, stat in stats.items():
        figures.update(scale.lengths(f"calibre_{name}", float(stat(values)) if len(values) else math.nan))
    return figures


def _tortuosity_figures(rows: list[Figures], scale: Scale) -> Figures:
    used = [r for r in rows if r["in_tortuosity"]]
    length = np.asarray([r["length_px"] for r in used], dtype=np.float64)
    tau = np.asarray([r["tortuosity"] for r in used], dtype=np.float64)
    kappa = np.asarray([r["curvature_rad_per_px"] for r in used], dtype=np.float64)
    total = float(length.sum())
    figures: Figures = {"tortuosity_segment_count": len(used)}
    figures["tortuosity_mean"] = float((tau * length).sum() / total) if total else math.nan
    figures["tortuosity_median"] = weighted_median(tau, length)
    figures.update(scale.per_length("curvature_mean_rad", float((kappa * length).sum() / total) if total else math.nan))
    figures.update(scale.per_length("curvature_median_rad", weighted_median(kappa, length)))
    return figures


def analyse_mask(
    mask: np.ndarray,
    fov: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    camera_fov_deg: float | None = None,
) -> Analysis:
    """Measure a boolean vessel map inside its FOV; lengths in px, FOV diameters and (if known) µm.

    Args:
        mask: (H, W) vessel map, any non-zero pixel is vessel.
        fov: (H, W) field of view (None: the whole image).
        pixel_size_um: micrometres per pixel (e.g. from DICOM Pixel Spacing).
        camera_fov_deg: the camera's angle of view instead, see :mod:`.units`.
    """
    vessels, fov = _as_masks(mask, fov)
    fov_area = int(fov.sum())
    diameter = fov_diameter_px(fov_area)
    scale = Scale(diameter, resolve_pixel_size(pixel_size_um, camera_fov_deg, diameter))
    width_px = width_map(vessels)
    graph = build_graph(vessels, width_px)
    rows, curves, widths = _segment_rows(graph, width_px, scale)
    origin = tuple(int(v) for v in np.argwhere(fov).min(axis=0))
    figures: Figures = {
        "width_px": int(mask.shape[1]),
        "height_px": int(mask.shape[0]),
        "fov_area_px": fov_area,
        "fov_diameter_px": diameter,
        "pixel_size_um": scale.pixel_size_um,
        "vessel_area_px": int(vessels.sum()),
        "vessel_density": float(vessels.sum()) / fov_area,
    }
    figures.update(_graph_figures(graph, rows, curves, width_px, scale))
    figures.update(_calibre_figures(widths, scale))
    figures.update(_tortuosity_figures(rows, scale))
    figures["fractal_dimension_mask"] = box_counting_dimension(vessels, origin, diameter)
    figures["fractal_dimension_skeleton"] = box_counting_dimension(graph.skeleton, origin, diameter)
    return Analysis(figures, rows, graph, [float(r["calibre_median_px"]) for r in rows])


def measure_mask(
    mask: np.ndarray, fov: np.ndarray | None = None, pixel_size_um: float | None = None, **kwargs: float | None
) -> Figures:
    """The image's figures (the keys are measurements.csv's columns); see :func:`analyse_mask`."""
    return analyse_mask(mask, fov, pixel_size_um, **kwargs).figures
