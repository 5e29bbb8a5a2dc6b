"""What :class:`~fundus_vessels.runtime.pipeline.Result` keeps and tabulates: ``save()`` and ``to_dict()``.

``result.save(out_dir)`` writes the files ``fundus-infer`` writes for one image
(``<stem>_mask.png``, ``<stem>_prob.png``, ``<stem>_overlay.png``); ``result.to_dict()`` is the
image's row of ``results.csv`` (:mod:`fundus_vessels.runtime.results_table`), its quality graded
by the same gate ``fundus-infer --quality flag`` applies.
"""

from __future__ import annotations

import os
from pathlib import Path

from fundus_vessels.runtime.outputs import SAVE_KINDS, save_outputs
from fundus_vessels.runtime.pipeline import Result
from fundus_vessels.runtime.quality import assess_image, assess_scale, assess_vessels, rounded
from fundus_vessels.runtime.results_table import entry_row

DEFAULT_STEM = "image"  # outputs of an array segmented without a file name


def save_result(
    result: Result, out_dir: str | os.PathLike, kinds: tuple[str, ...] | None = None, stem: str | None = None
) -> dict[str, str]:
    """Write ``<stem>_<kind>.png`` for ``kinds`` (default: mask, prob, overlay); returns ``{kind: file name}``.

    ``stem`` defaults to the source file's stem (``image`` for an array).
    """
    kinds = SAVE_KINDS if kinds is None else tuple(kinds)
    unknown = sorted(set(kinds) - set(SAVE_KINDS))
    if unknown:
        raise ValueError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(SAVE_KINDS)}")
    if "overlay" in kinds and result.photo is None:
        raise ValueError("the overlay needs the photograph: this Result holds none")
    stem = stem or (Path(result.source).stem if result.source else DEFAULT_STEM)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return save_outputs(out, stem, result.photo, result, kinds)


def result_entry(result: Result) -> dict:
    """The summary.json-like entry of a result (what results.csv rows are made from)."""
    entry = {
        "file": result.source or "",
        "seconds": round(sum(result.timings.values()), 4),
        "vessel_fraction": round(result.vessel_fraction, 6),
        "scale": result.scale.to_dict(),
    }
    if result.photo is not None:
        quality = assess_vessels(assess_image(result.photo), result.mask, result.fov)
        entry["quality"] = rounded(assess_scale(quality, result.scale))
    return entry


def result_row(result: Result) -> dict:
    """The result's row of results.csv: ``{column: value}`` in the file's column order."""
    return entry_row(result_entry(result))
