"""Vessel measurements from a binary vessel map: density, skeleton graph, calibre, tortuosity,
branching angles and fractal dimension, in pixels, micrometres and FOV diameters.

Public API (what ``fundus-measure``, ``fundus-infer --measure`` and batch runners call):

- :func:`measure_mask` ``(mask, fov=None, pixel_size_um=None) -> dict``: the image's figures, one
  flat dict whose keys are the ``measurements.csv`` column names (unit in the name).
- :func:`analyse_mask`: the same plus the per-segment rows and the graph, for tables and pictures.

The formulas are listed in the README (section "Vessel measurements"), next to each output name.
"""

from fundus_vessels.runtime.measure.analysis import Analysis, analyse_mask, measure_mask

__all__ = ["Analysis", "analyse_mask", "measure_mask"]
