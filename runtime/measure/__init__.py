"""Vessel measurements from a binary vessel map: density, skeleton graph, calibre, tortuosity,
branching angles and fractal dimension, in pixels, micrometres and FOV diameters.

Public API (what ``fundus-measure``, ``fundus-infer --measure`` and batch runners call):

- :func:`measure_mask` ``(mask, fov=None, pixel_size_um=None) -> dict``: the image's figures, one
  flat dict whose keys are the ``measurements.csv`` column names (unit in the name).
- :func:`analyse_mask`: the same plus the per-segment rows and the graph, for tables and pictures.

The formulas are listed in the README (section "Vessel measurements"), next to each output name.
Imported lazily: ``fundus-infer`` without ``--measure`` does not load scikit-image or skan.
"""

from __future__ import annotations

import importlib

__all__ = ["Analysis", "analyse_mask", "measure_mask"]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("fundus_vessels.runtime.measure.analysis"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
