"""Calibre: vessel width from the Euclidean distance transform sampled along the centreline.

A vessel ``n`` pixels across has its centreline on the middle pixel (``n`` odd) or on one of the
two middle pixels (``n`` even), so the distance from the skeleton pixel's centre to the nearest
background pixel's centre is ``(n + 1) / 2`` or ``n / 2``: ``2 * EDT - 1`` would read even widths
one pixel thin. The width map is therefore taken on the mask upscaled 2x by pixel repetition, where
every vessel is an even number ``2n`` of half-pixels across and its two middle half-pixel rows lie
inside one original pixel: ``width(p) = max of EDT2 over p's 2x2 block``, in px (EDT2 in
half-pixels, OpenCV exact L2). Axis-aligned vessels read their pixel count exactly.

Near a junction the width map measures the junction's inscribed disc, not the vessel: a segment's
pixels closer (along the segment) to a junction end than half the width there are left out; a
segment with nothing left keeps all its pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from fundus_vessels.runtime.measure.skeleton import Segment


def width_map(mask: np.ndarray) -> np.ndarray:
    """float32 local vessel width (px) at every vessel pixel, 0 outside vessels (see module doc)."""
    height, width = mask.shape
    doubled = cv2.resize(mask.astype(np.uint8), (2 * width, 2 * height), interpolation=cv2.INTER_NEAREST)
    distance = cv2.distanceTransform(doubled, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.maximum(
        np.maximum(distance[0::2, 0::2], distance[0::2, 1::2]), np.maximum(distance[1::2, 0::2], distance[1::2, 1::2])
    )


def chain_length(pixels: np.ndarray) -> np.ndarray:
    """Cumulative length along an ordered 8-connected pixel chain (steps of 1 or sqrt 2), from 0."""
    steps = np.hypot(*np.diff(pixels.astype(np.float64), axis=0).T)
    return np.concatenate([[0.0], np.cumsum(steps)])


def segment_widths(segment: Segment, widths: np.ndarray) -> np.ndarray:
    """Widths (px) along ``segment`` from the :func:`width_map`, junction zones left out."""
    rows, cols = segment.pixels[:, 0], segment.pixels[:, 1]
    width = widths[rows, cols].astype(np.float64)
    radius = 0.5 * width
    along = chain_length(segment.pixels)
    keep = np.ones(len(along), dtype=bool)
    if segment.start_junction >= 0:
        keep &= along >= radius[0]
    if segment.end_junction >= 0:
        keep &= along[-1] - along >= radius[-1]
    if not keep.any():
        keep[:] = True
    return width[keep]
