"""Tiling: cutting an image into tiles and stitching them back reproduces it, for any size."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundus_vessels.runtime.tiling import make_grid, stitch_tiles, tile_image, tile_origins


@st.composite
def image_and_tiling(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    tile = draw(st.sampled_from([8, 16, 32, 48]))
    overlap = draw(st.integers(0, tile - 1))
    height = draw(st.integers(1, 160))
    width = draw(st.integers(1, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    plane = np.random.default_rng(seed).random((height, width), dtype=np.float32)
    return plane, tile, overlap


@settings(max_examples=60, deadline=None)
@given(image_and_tiling())
def test_stitching_the_tiles_reproduces_the_image(case: tuple[np.ndarray, int, int]) -> None:
    plane, tile, overlap = case
    grid, tiles = tile_image(plane, tile, overlap)
    assert tiles.shape == (len(grid), tile, tile)
    np.testing.assert_allclose(stitch_tiles(grid, tiles), plane, rtol=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 300), st.data())
def test_origins_cover_every_pixel_without_overrun(length: int, tile: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, tile))
    origins = tile_origins(length, tile, stride)
    padded = max(length, tile)
    assert origins[0] == 0 and origins[-1] + tile == padded
    assert all(0 < b - a <= stride for a, b in pairwise(origins))


def test_image_smaller_than_a_tile_is_padded_to_one_tile() -> None:
    grid = make_grid((10, 7), tile=256, overlap=32)
    assert grid.padded_shape == (256, 256) and len(grid) == 1


def test_overlap_must_be_smaller_than_the_tile() -> None:
    with pytest.raises(ValueError, match="overlap"):
        make_grid((100, 100), tile=32, overlap=32)


def test_stitcher_refuses_a_plane_with_tiles_missing() -> None:
    from fundus_vessels.runtime.tiling import Stitcher

    grid, tiles = tile_image(np.zeros((40, 50), dtype=np.float32), 16, 4)
    stitcher = Stitcher(grid)
    stitcher.add(grid.origins[:-1], tiles[:-1])
    with pytest.raises(ValueError, match="tiles"):
        stitcher.result()


@settings(max_examples=40, deadline=None)
@given(image_and_tiling(), st.data())
def test_tiles_outside_the_region_are_not_run_and_change_no_pixel_inside(
    case: tuple[np.ndarray, int, int], data: st.DataObject
) -> None:
    from fundus_vessels.runtime.inference import predict_plane
    from fundus_vessels.runtime.tiling import tiles_touching

    plane, tile, overlap = case
    height, width = plane.shape
    region = np.zeros_like(plane, dtype=bool)
    top, left = data.draw(st.integers(0, height - 1)), data.draw(st.integers(0, width - 1))
    region[top : top + data.draw(st.integers(1, height)), left : left + data.draw(st.integers(1, width))] = True
    calls: list[int] = []

    def echo(tiles: np.ndarray) -> np.ndarray:  # the model input back: stitching then rebuilds the plane
        calls.append(len(tiles))
        return tiles[:, 0]

    everything = predict_plane(plane, echo, tile, overlap, batch=3)
    run_all = sum(calls)
    calls.clear()
    inside = predict_plane(plane, echo, tile, overlap, batch=3, region=region)
    grid = make_grid(plane.shape, tile, overlap)
    assert sum(calls) == len(tiles_touching(grid, region)) <= run_all == len(grid)
    np.testing.assert_array_equal(inside[region], everything[region])
    covered = np.zeros_like(region)  # pixels some run tile covers; the rest are 0
    for y, x in tiles_touching(grid, region):
        covered[y : y + tile, x : x + tile] = True
    assert not inside[~covered].any()
