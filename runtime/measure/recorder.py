"""Measure masks one by one into ``measurements.csv`` and ``segments.csv``: fundus-measure, ``fundus-infer --measure``
and ``fundus-batch --measure`` all measure through :class:`Recorder`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.imageio import read_image
from fundus_vessels.runtime.measure.outputs import MEASUREMENTS_CSV, SEGMENTS_CSV, json_ready, write_csv, write_picture
from fundus_vessels.runtime.outputs_guard import printable

PROG = "fundus-measure"  # the tool named in measuring errors, whichever command measured


class Recorder:
    """Measures masks one by one, writes each picture, keeps the rows for the two tables."""

    def __init__(
        self,
        pixel_size_um: float | None = None,
        camera_fov_deg: float | None = None,
        picture: bool = True,
        over_photo: bool = False,
    ):
        self.pixel_size_um, self.camera_fov_deg, self.picture = pixel_size_um, camera_fov_deg, picture
        self.over_photo = over_photo  # draw the picture over the photograph (measure(photo=...))
        self.rows: list[dict] = []
        self.segments: list[dict] = []

    def measure(
        self,
        stem: str,
        mask: np.ndarray,
        fov: np.ndarray | None,
        out_dir: Path,
        pixel_size_um: float | None = None,
        photo: Path | None = None,
        **context: str,
    ) -> dict:
        """Measure one mask; returns its figures (``context`` columns first), picture written to ``out_dir``.

        ``pixel_size_um`` overrides the recorder's for this image (a DICOM file's own pixel spacing);
        ``photo``: the photograph the picture is drawn over when the recorder has ``over_photo``.
        """
        from fundus_vessels.runtime.measure.analysis import analyse_mask  # the 'measure' extra

        start = time.perf_counter()
        analysis = analyse_mask(mask, fov, pixel_size_um or self.pixel_size_um, self.camera_fov_deg)
        name = printable(stem)  # the tables and summary.json are UTF-8 whatever the file names are
        row = {"image": name, **{k: printable(v) for k, v in context.items()}, **analysis.figures}
        if self.picture:
            vessels = mask.astype(bool) if fov is None else mask & fov
            background = read_image(photo) if self.over_photo and photo is not None else None
            row["picture"] = printable(write_picture(out_dir, stem, analysis, vessels, background))
        row["seconds"] = round(time.perf_counter() - start, 4)
        self.rows.append(row)
        self.segments.extend({"image": name, **segment} for segment in analysis.segments)
        return json_ready(row)

    def write_tables(self, out_dir: Path) -> None:
        """``measurements.csv`` and ``segments.csv`` in ``out_dir``."""
        write_csv(out_dir / MEASUREMENTS_CSV, self.rows)
        write_csv(out_dir / SEGMENTS_CSV, self.segments)
