"""``results.csv``: one row per input of a run, beside ``summary.json``; the one definition of its columns.

fundus-infer (files, ``--demo``, ``--watch``), fundus-batch, the Python API (:meth:`Result.to_dict`)
and the C++ ``fundus-infer`` (cpp/src/results_csv.cpp) write these columns in this order;
docs/results.md describes each. Rows follow ``summary.json``: its images (segmented or refused) in
the order they were done, then the inputs that failed. An image that was segmented but could not
be measured (``--measure``) keeps its row, with status ``failed`` and the measuring error as reason.

Cells: numbers as Python's ``repr`` of the value summary.json holds (shortest text that reads back,
so C++ and Python write the same text for the same number); measurements with 6 significant
digits; an empty cell for "not known" (a failed input's vessel fraction, a micrometre column
without a pixel size). Lines end in ``\\n``; a cell holding a comma, quote or line feed is quoted
(``csv.QUOTE_MINIMAL``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from fundus_vessels.runtime.imageio import atomic_output

RESULTS_CSV = "results.csv"
STATUSES = ("ok", "refused", "failed")

# one row per input, every command; docs/results.md describes them in this order
BASE_COLUMNS = (
    "file",
    "status",
    "reason",
    "quality_verdict",
    "quality_reasons",
    "scale_factor",
    "scale_method",
    "vessel_fraction",
    "seconds",
)
# added after BASE_COLUMNS when the run measured the vessel maps (--measure): measurements.csv's
# figures (runtime/measure/analysis.py), names unchanged, prefixed so none clashes with the above
MEASURE_PREFIX = "measure_"
MEASURE_FIGURES = (
    "fov_diameter_px",
    "pixel_size_um",
    "vessel_area_px",
    "vessel_density",
    "total_length_px",
    "total_length_dfov",
    "total_length_um",
    "segment_count",
    "junction_count",
    "bifurcation_count",
    "crossing_count",
    "end_point_count",
    "branching_angle_deg_mean",
    "branching_angle_deg_median",
    "calibre_median_px",
    "calibre_median_dfov",
    "calibre_median_um",
    "calibre_mean_px",
    "calibre_mean_dfov",
    "calibre_mean_um",
    "calibre_p10_px",
    "calibre_p10_dfov",
    "calibre_p10_um",
    "calibre_p90_px",
    "calibre_p90_dfov",
    "calibre_p90_um",
    "tortuosity_segment_count",
    "tortuosity_mean",
    "tortuosity_median",
    "curvature_mean_rad_per_px",
    "curvature_mean_rad_per_dfov",
    "curvature_mean_rad_per_um",
    "curvature_median_rad_per_px",
    "curvature_median_rad_per_dfov",
    "curvature_median_rad_per_um",
    "fractal_dimension_mask",
    "fractal_dimension_skeleton",
)
MEASURE_COLUMNS = tuple(MEASURE_PREFIX + name for name in MEASURE_FIGURES)
# read from entries written before scale normalisation (older summary.json files, refused images)
DEFAULT_SCALE = {"factor": 1.0, "method": "none"}

Row = dict[str, object]


def columns(measure: bool = False) -> tuple[str, ...]:
    """The header of results.csv: :data:`BASE_COLUMNS`, plus :data:`MEASURE_COLUMNS` with ``--measure``."""
    return BASE_COLUMNS + (MEASURE_COLUMNS if measure else ())


def entry_row(entry: Mapping, measure: bool = False) -> Row:
    """The row of a summary.json image entry (segmented, or refused by the quality gate)."""
    quality = entry.get("quality") or {}
    scale = entry.get("scale") or DEFAULT_SCALE
    refused = bool(entry.get("refused"))
    row: Row = {
        "file": entry["file"],
        "status": "refused" if refused else "ok",
        "reason": ("quality gate: " + "; ".join(quality.get("reasons", []))) if refused else "",
        "quality_verdict": quality.get("verdict", ""),
        "quality_reasons": "; ".join(quality.get("reasons", [])),
        "scale_factor": scale.get("factor", DEFAULT_SCALE["factor"]),
        "scale_method": scale.get("method", DEFAULT_SCALE["method"]),
        "vessel_fraction": entry.get("vessel_fraction"),
        "seconds": entry.get("seconds"),
    }
    if measure:
        figures = entry.get("measurements") or {}
        row.update({MEASURE_PREFIX + name: figures.get(name) for name in MEASURE_FIGURES})
    return row


def failure_row(failure: Mapping, measure: bool = False) -> Row:
    """The row of a summary.json failure: only file, status and reason are known."""
    row: Row = dict.fromkeys(columns(measure))
    row.update({"file": failure["file"], "status": "failed", "reason": failure["error"]})
    return row


def summary_rows(summary: Mapping, measure: bool | None = None) -> list[Row]:
    """Every input's row from a ``summary.json`` dict (``measure``: default, any entry was measured)."""
    images, failures = summary.get("images", []), summary.get("failures", [])
    if measure is None:
        measure = any("measurements" in e for e in images)
    rows = [entry_row(e, measure) for e in images]
    by_file = {row["file"]: row for row in rows if row["status"] == "ok"}
    for failure in failures:
        measured = by_file.get(failure["file"])
        if measured is not None:  # segmented, then measuring it failed: one row, failed
            measured.update({"status": "failed", "reason": failure["error"]})
        else:
            rows.append(failure_row(failure, measure))
    return rows


def cell(name: str, value: object) -> str:
    """Text of one cell (see the module docstring)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}" if name.startswith(MEASURE_PREFIX) else repr(value)
    return str(value)


def write_rows(path: str | Path, rows: Iterable[Row], measure: bool = False) -> Path:
    """Write ``rows`` as results.csv at ``path`` (atomically); returns the path."""
    header = columns(measure)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[cell(c, row.get(c)) for c in header] for row in rows])
    return Path(path)


def write_results(out_dir: str | Path, summary: Mapping, measure: bool | None = None) -> Path:
    """``out_dir/results.csv`` from the run's summary.json content (the same folder's)."""
    rows = summary_rows(summary, measure)
    if measure is None:
        measure = any("measurements" in e for e in summary.get("images", []))
    return write_rows(Path(out_dir) / RESULTS_CSV, rows, measure)


def read_results(path: str | Path) -> list[dict[str, str]]:
    """results.csv back as a list of ``{column: text}`` (for tests and the HTML report)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
