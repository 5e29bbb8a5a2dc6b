"""Whole-image inference from any tile predictor: preprocess → tiles (batched) → stitch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from runtime.tiling import Stitcher, iter_tile_batches, make_grid

# (n, 1, tile, tile) float32 model input -> (n, tile, tile) float32 vessel probability
TilePredictor = Callable[[np.ndarray], np.ndarray]


def predict_plane(
    plane: np.ndarray, predict_tiles: TilePredictor, tile: int, overlap: int, batch: int = 8
) -> np.ndarray:
    """Vessel probability (H, W) of a preprocessed plane, streaming tiles ``batch`` at a time.

    Only one batch of tiles and the two stitching accumulators are held in memory.
    """
    grid = make_grid(plane.shape, tile, overlap)
    stitcher = Stitcher(grid)
    for origins, tiles in iter_tile_batches(plane, grid, batch):
        stitcher.add(origins, predict_tiles(tiles[:, None].astype(np.float32, copy=False)))
    return stitcher.result()
