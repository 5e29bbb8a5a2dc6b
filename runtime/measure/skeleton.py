"""The vessel centreline and its graph: thinning, segments between junctions and ends, spur pruning.

Thinning is scikit-image's ``skeletonize`` (Zhang-Suen, 8-connected, one pixel wide). The graph is
skan's: pixels are nodes, 8-neighbours are edges, and a *segment* is a path of degree-2 pixels
between two pixels of degree != 2 (skan's "paths", walked by skan, not here). Adjacent pixels of
degree >= 3 form one *junction* (an 8-connected cluster); skan's links inside a cluster are not
segments. Terminal segments (one free end) shorter than the vessel width at their junction
(:func:`..calibre.width_map`) are spurs of the thinning, not vessels: they are removed once, with
their junction pixel where its remaining neighbours touch without it, and the graph rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Segment:
    """One vessel segment: ``pixels`` (n, 2) row/col, ordered; junction ids at its ends (-1: free end)."""

    pixels: np.ndarray
    start_junction: int
    end_junction: int

    @property
    def kind(self) -> str:
        """``end-end``, ``end-junction``, ``junction-junction`` or ``loop`` (starts where it ends)."""
        if len(self.pixels) > 1 and np.array_equal(self.pixels[0], self.pixels[-1]):
            return "loop"
        ends = (self.start_junction >= 0) + (self.end_junction >= 0)
        return ("end-end", "end-junction", "junction-junction")[ends]


@dataclass(frozen=True)
class Junction:
    """A cluster of adjacent skeleton pixels of degree >= 3; ``ends``: (segment, at its start?) pairs."""

    centre: np.ndarray
    pixels: np.ndarray
    ends: list[tuple[int, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class VesselGraph:
    """The skeleton image, its segments, junctions and free end points (row/col)."""

    skeleton: np.ndarray
    segments: list[Segment]
    junctions: list[Junction]
    end_points: np.ndarray


def thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide centreline of a boolean mask (Zhang-Suen thinning)."""
    return skeletonize(mask.astype(bool))


def _skan_skeleton(skeleton: np.ndarray):  # -> skan.Skeleton
    import skan  # imported on first use: numba compiles skan's walkers once per process

    return skan.Skeleton(skeleton, keep_images=False)


def _spurs(graph, width_px: np.ndarray) -> list[int]:
    """skan path indices of terminal paths shorter than the vessel width at their junction."""
    lengths = graph.path_lengths()
    spurs = []
    for index in range(graph.n_paths):
        ids = graph.path(index)
        degree_start, degree_end = graph.degrees[ids[0]], graph.degrees[ids[-1]]
        if min(degree_start, degree_end) != 1 or max(degree_start, degree_end) < 3:
            continue  # not terminal: both ends free, or both at junctions
        junction = ids[0] if degree_start >= 3 else ids[-1]
        row, col = np.round(graph.coordinates[junction]).astype(int)
        if lengths[index] < width_px[row, col]:
            spurs.append(index)
    return spurs


def _remove_spurs(skeleton: np.ndarray, graph, spurs: list[int]) -> np.ndarray:
    """``skeleton`` without the spurs' pixels (junction pixels kept unless left redundant)."""
    pruned = skeleton.copy()
    coords = np.round(graph.coordinates).astype(int)
    junction_pixels = []
    for index in spurs:
        ids = graph.path(index)
        at_junction = graph.degrees[ids] >= 3
        pruned[coords[ids[~at_junction], 0], coords[ids[~at_junction], 1]] = False
        junction_pixels.extend(coords[ids[at_junction]])
    padded = np.pad(pruned, 1)
    for row, col in junction_pixels:
        window = padded[row : row + 3, col : col + 3].copy()
        window[1, 1] = False
        neighbours = np.argwhere(window)
        if len(neighbours) == 2 and np.abs(neighbours[0] - neighbours[1]).max() <= 1:
            padded[row + 1, col + 1] = False  # a corner the two neighbours no longer need
    return padded[1:-1, 1:-1]


def _junction_labels(graph, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per skan node its junction cluster id (-1: none); the labelled cluster image; cluster count."""
    coords = np.round(graph.coordinates).astype(int)
    is_junction = graph.degrees >= 3
    image = np.zeros(shape, dtype=bool)
    image[coords[is_junction, 0], coords[is_junction, 1]] = True
    labels, count = ndimage.label(image, structure=EIGHT_CONNECTED)
    node_cluster = np.where(is_junction, labels[coords[:, 0], coords[:, 1]] - 1, -1)
    return node_cluster, labels, count


def _has_edges(skeleton: np.ndarray) -> bool:
    """Whether any two skeleton pixels are 8-neighbours (skan needs at least one edge)."""
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), EIGHT_CONNECTED.astype(np.uint8), mode="constant")
    return bool((neighbours[skeleton] > 1).any())


def build_graph(mask: np.ndarray, width_px: np.ndarray) -> VesselGraph:
    """Thin ``mask``, build its skan graph, prune spurs (using the width map), collect segments."""
    skeleton = thin(mask)
    if not _has_edges(skeleton):
        return VesselGraph(skeleton, [], [], np.empty((0, 2), dtype=int))
    graph = _skan_skeleton(skeleton)
    spurs = _spurs(graph, width_px)
    if spurs:
        skeleton = _remove_spurs(skeleton, graph, spurs)
        if not _has_edges(skeleton):
            return VesselGraph(skeleton, [], [], np.empty((0, 2), dtype=int))
        graph = _skan_skeleton(skeleton)
    node_cluster, labels, _count = _junction_labels(graph, skeleton.shape)
    junction_pixels = ndimage.find_objects(labels)
    junctions = []
    for index, box in enumerate(junction_pixels):
        pixels = np.argwhere(labels[box] == index + 1) + np.array([box[0].start, box[1].start])
        junctions.append(Junction(pixels.mean(axis=0), pixels))
    segments = []
    for index in range(graph.n_paths):
        ids = graph.path(index)
        if (node_cluster[ids] >= 0).all():
            continue  # a link inside one junction cluster
        start, end = int(node_cluster[ids[0]]), int(node_cluster[ids[-1]])
        number = len(segments)
        segments.append(Segment(np.round(graph.coordinates[ids]).astype(int), start, end))
        if start >= 0:
            junctions[start].ends.append((number, True))
        if end >= 0:
            junctions[end].ends.append((number, False))
    coords = np.round(graph.coordinates).astype(int)
    end_points = coords[graph.degrees == 1]
    return VesselGraph(skeleton, segments, junctions, end_points)
