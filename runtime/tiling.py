"""Cut an image into fixed-size tiles (cropped, never resampled) and stitch predictions back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis so that tiles of ``tile`` px cover ``length`` px.

    The last tile is aligned to the end, so no tile reaches past the (padded) image.
    """
    if tile <= 0 or stride <= 0 or stride > tile:
        raise ValueError(f"need 0 < stride <= tile, got tile={tile} stride={stride}")
    if length <= tile:
        return [0]
    origins = list(range(0, length - tile + 1, stride))
    if origins[-1] != length - tile:
        origins.append(length - tile)
    return origins


def blend_ramp(tile: int, floor: float = 0.05) -> np.ndarray:
    """1-D tent (peak 1 at the centre, ``floor`` at the ends); the 2-D window is its outer square."""
    ramp = 1.0 - np.abs(np.linspace(-1.0, 1.0, tile, dtype=np.float64))
    return np.maximum(ramp, floor)


def blend_window(tile: int, floor: float = 0.05) -> np.ndarray:
    """Separable tent window (peak 1 at the centre, ``floor`` at the borders) for blending."""
    ramp = blend_ramp(tile, floor)
    return np.outer(ramp, ramp).astype(np.float32)


def axis_weight(length: int, tile: int, stride: int) -> np.ndarray:
    """Sum of the 1-D blending ramps of every tile along one axis of ``length`` px."""
    ramp, weight = blend_ramp(tile), np.zeros(length)
    for origin in tile_origins(length, tile, stride):
        weight[origin : origin + tile] += ramp
    return weight


@dataclass(frozen=True)
class TileGrid:
    """The tiling of one image: its size, the padded size and every tile's top-left corner."""

    height: int
    width: int
    tile: int
    stride: int

    @property
    def padded_shape(self) -> tuple[int, int]:
        return max(self.height, self.tile), max(self.width, self.tile)

    @property
    def origins(self) -> list[tuple[int, int]]:
        ph, pw = self.padded_shape
        ys = tile_origins(ph, self.tile, self.stride)
        xs = tile_origins(pw, self.tile, self.stride)
        return [(y, x) for y in ys for x in xs]

    def __len__(self) -> int:
        return len(self.origins)


def make_grid(shape: tuple[int, ...], tile: int, overlap: int) -> TileGrid:
    """Tiling for an image of ``shape`` (H, W, ...) with ``overlap`` px shared between tiles."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    return TileGrid(int(shape[0]), int(shape[1]), tile, tile - overlap)


def pad_to_grid(plane: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Reflect-pad a plane at the bottom/right up to the grid's padded size (no-op if large)."""
    return pad_plane(plane, grid.padded_shape)


def pad_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Reflect-pad a plane at the bottom/right up to ``shape`` (H, W); symmetric when the pad is wider
    than the plane (as ``cpp/src/tiling.cpp`` padToGrid: BORDER_REFLECT_101, else BORDER_REFLECT)."""
    ph, pw = shape
    pad_y, pad_x = ph - plane.shape[0], pw - plane.shape[1]
    if pad_y == 0 and pad_x == 0:
        return plane
    widths = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (plane.ndim - 2)
    mode = "reflect" if pad_y < plane.shape[0] and pad_x < plane.shape[1] else "symmetric"
    return np.pad(plane, widths, mode=mode)


def tiles_touching(grid: TileGrid, region: np.ndarray) -> list[tuple[int, int]]:
    """Origins of the grid's tiles that hold at least one True pixel of ``region`` (H, W bool)."""
    t = grid.tile
    return [(y, x) for y, x in grid.origins if region[y : y + t, x : x + t].any()]


def iter_tile_batches(
    plane: np.ndarray, grid: TileGrid, batch: int, origins: list[tuple[int, int]] | None = None
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Yield ``(origins, tiles)`` with tiles shaped (n, tile, tile), at most ``batch`` at a time.

    ``origins``: only these tiles of the grid (default: all).
    """
    padded = pad_to_grid(plane, grid)
    origins = grid.origins if origins is None else origins
    t = grid.tile
    for start in range(0, len(origins), batch):
        chunk = origins[start : start + batch]
        tiles = np.stack([padded[y : y + t, x : x + t] for y, x in chunk])
        yield chunk, tiles


class Stitcher:
    """Accumulates tile predictions with blending weights; ``result()`` is the weighted mean.

    Every tile of the grid must be added once, or skipped (:meth:`skip`: its prediction is taken
    as 0, and it costs nothing). The tiles sit on a product grid and the window is separable, so
    the weight plane is the outer product of two 1-D sums, made up front (the stitching cost is
    then one multiply-add per tile pixel).
    """

    def __init__(self, grid: TileGrid) -> None:
        self.grid = grid
        self.window = blend_window(grid.tile)
        ph, pw = grid.padded_shape
        self._weight_y = axis_weight(ph, grid.tile, grid.stride)[: grid.height]
        self._weight_x = axis_weight(pw, grid.tile, grid.stride)[: grid.width]
        # float64 sums: with many overlapping tiles float32 drifts by more than 1e-6 relative
        self._sum = np.zeros((ph, pw), dtype=np.float64)
        self._added = 0

    def add(self, origins: list[tuple[int, int]], predictions: np.ndarray) -> None:
        """Add predictions shaped (n, tile, tile) placed at ``origins``."""
        t = self.grid.tile
        for (y, x), pred in zip(origins, predictions, strict=True):
            self._sum[y : y + t, x : x + t] += pred * self.window
        self._added += len(origins)

    def skip(self, count: int) -> None:
        """Count ``count`` tiles as added with prediction 0 (tiles not worth running)."""
        self._added += count

    def result(self) -> np.ndarray:
        """The stitched (H, W) float32 map, cropped back to the image size."""
        if self._added != len(self.grid):
            raise ValueError(f"stitcher got {self._added} tiles, the grid has {len(self.grid)}")
        h, w = self.grid.height, self.grid.width
        out = np.empty((h, w), dtype=np.float32)
        np.divide(self._sum[:h, :w], self._weight_y[:, None], out=out, casting="same_kind")
        out /= self._weight_x[None, :].astype(np.float32)
        return out


def tile_image(plane: np.ndarray, tile: int, overlap: int) -> tuple[TileGrid, np.ndarray]:
    """All tiles of a plane at once (for small images and tests): ``(grid, tiles)``."""
    grid = make_grid(plane.shape, tile, overlap)
    tiles = [t for _, t in iter_tile_batches(plane, grid, len(grid))]
    return grid, tiles[0]


def stitch_tiles(grid: TileGrid, tiles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`tile_image` for (n, tile, tile) predictions."""
    stitcher = Stitcher(grid)
    stitcher.add(grid.origins, tiles)
    return stitcher.result()
