"""``fundus-infer --measure`` (and ``fundus-batch --measure``): measure the masks a run has just written.

The masks are read back from the output folder with the run's FOV setting (so Python and C++
folders measure alike); each image entry gets ``measurements`` (:func:`measure_entry`, the one
code path of both commands); the demo also gets ``measurements_drawn_tree``, the figures of the
tree it was drawn with. measurements.csv and segments.csv go beside summary.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fundus_vessels.runtime.jobs import DEMO_STEM
from fundus_vessels.runtime.measure.recorder import PROG, Recorder
from fundus_vessels.runtime.measure.sources import MaskSource, collect_sources_from_entries, load
from fundus_vessels.runtime.measure.truth import drawn_tree_figures
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def measure_recorder(args: argparse.Namespace) -> Recorder:
    """The recorder of a run's ``--measure``: ``--pixel-size-um``, ``--camera-fov-deg``, ``--measure-over-photo``."""
    return Recorder(args.pixel_size_um, args.camera_fov_deg, over_photo=args.measure_over_photo)


def measure_entry(recorder: Recorder, out_dir: Path, entry: dict, source: MaskSource) -> dict:
    """Measure the mask ``entry``'s run wrote (``source``); sets and returns ``entry["measurements"]``.

    The pixel size is ``--pixel-size-um`` (the recorder's), else a DICOM input's own pixel spacing
    (``entry["dicom"]["pixel_size_um"]``), else none (figures in pixels). Raises ValueError/OSError.
    """
    mask, fov, fov_source = load(source, "auto")
    pixel_size = recorder.pixel_size_um or entry.get("dicom", {}).get("pixel_size_um")
    entry["measurements"] = recorder.measure(
        source.stem,
        mask,
        fov,
        out_dir,
        file=entry["file"],
        fov_source=fov_source,
        pixel_size_um=pixel_size,
        photo=source.photo,
    )
    return entry["measurements"]


def measure_infer_outputs(args: argparse.Namespace, images: list[dict], failures: list[dict]) -> None:
    """Measure each segmented entry of ``images`` (in place); measuring failures join ``failures``."""
    out_dir = Path(args.output_dir)
    recorder = measure_recorder(args)
    for entry, source in collect_sources_from_entries(out_dir, images, args.fov):
        if source is None:
            failures.append({"file": entry["file"], "error": f"{PROG}: no mask saved (add mask to --save)"})
            continue
        try:
            measure_entry(recorder, out_dir, entry, source)
        except (ValueError, OSError) as exc:
            failures.append({"file": entry["file"], "error": f"{PROG}: {exc}"})
            continue
        if entry["file"] == f"{DEMO_STEM}_input.png":
            entry["measurements_drawn_tree"] = drawn_tree_figures(make_synthetic_fundus())
    recorder.write_tables(out_dir)
