"""Whole-image inference of a preprocessed plane from any tile predictor: tiles (batched) → predict → stitch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fundus_vessels.runtime.tiling import Stitcher, iter_tile_batches, make_grid, pad_plane, tiles_touching

# tiles per backend call. Per-tile time, width-0.25 U-Net on 2 CPU cores: PyTorch eager is fastest
# at 4 (34.6 ms; 40.9 at 8), ONNX Runtime is flat (15.6-16.2 ms for 1-8); memory holds one batch.
DEFAULT_BATCH = 4
# (n, 1, tile, tile) float32 model input -> (n, tile, tile) float32 vessel probability
TilePredictor = Callable[[np.ndarray], np.ndarray]


def predict_plane(
    plane: np.ndarray,
    predict_tiles: TilePredictor,
    tile: int,
    overlap: int,
    batch: int = DEFAULT_BATCH,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """Vessel probability (H, W) of a preprocessed plane, streaming tiles ``batch`` at a time.

    Only one batch of tiles and the two stitching accumulators are held in memory. ``region``
    (H, W bool, e.g. the FOV): tiles without a True pixel are not run and count as probability 0,
    so every pixel of the region gets exactly the value it would get with all tiles run.
    """
    grid = make_grid(plane.shape, tile, overlap)
    stitcher = Stitcher(grid)
    origins = grid.origins if region is None else tiles_touching(grid, region)
    stitcher.skip(len(grid) - len(origins))
    for chunk, tiles in iter_tile_batches(plane, grid, batch, origins):
        stitcher.add(chunk, predict_tiles(tiles[:, None].astype(np.float32, copy=False)))
    return stitcher.result()


def whole_shape(shape: tuple[int, ...], multiple: int) -> tuple[int, int]:
    """(H, W) of a plane padded at the bottom/right up to multiples of ``multiple``."""
    return -(-int(shape[0]) // multiple) * multiple, -(-int(shape[1]) // multiple) * multiple


def fits_whole(shape: tuple[int, ...], limit: int, multiple: int) -> bool:
    """Whether a plane of ``shape`` runs in one pass: both padded sides at most ``limit`` (0: never)."""
    return limit > 0 and max(whole_shape(shape, multiple)) <= limit


def predict_whole(plane: np.ndarray, predict: TilePredictor, multiple: int) -> np.ndarray:
    """Vessel probability (H, W) of a preprocessed plane in one model pass (no tiles, no stitching).

    The plane is padded at the bottom/right to multiples of ``multiple`` by :func:`pad_plane` (the
    rule tiles are padded by) and the prediction cropped back. Every pixel sees the whole image as
    context, so values differ slightly from tiled ones (DRIVE test: the same scores, docs/benchmark.md).
    """
    h, w = plane.shape
    padded = pad_plane(plane, whole_shape(plane.shape, multiple))
    return predict(np.ascontiguousarray(padded, dtype=np.float32)[None, None])[0, :h, :w]
