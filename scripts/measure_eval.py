"""Vessel measurements on DRIVE: speed, resolution invariance, model vs 1st vs 2nd observer.

    python scripts/measure_eval.py bench          # seconds per mask, DRIVE size and 3504x2336
    python scripts/measure_eval.py invariance     # DRIVE test labels at 1x, 2x, 4x
    python scripts/measure_eval.py observers [--model BUNDLE]   # shipped model vs 1st, 2nd vs 1st

Data from FUNDUS_DATA_ROOT (default ../shared/data). Prints Markdown tables (the README's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE
from fundus_vessels.runtime.imageio import read_binary_mask, read_image
from fundus_vessels.runtime.measure import measure_mask
from fundus_vessels.runtime.pipeline import Segmenter

DIMENSIONLESS = (
    "vessel_density",
    "total_length_dfov",
    "calibre_median_dfov",
    "tortuosity_mean",
    "tortuosity_median",
    "curvature_mean_rad_per_dfov",
    "fractal_dimension_mask",
    "fractal_dimension_skeleton",
    "branching_angle_deg_median",
)
COMPARED = (
    *DIMENSIONLESS[:1],
    "total_length_px",
    "calibre_median_px",
    *DIMENSIONLESS[3:],
    "bifurcation_count",
    "end_point_count",
)


def data_root() -> Path:
    return Path(os.environ.get("FUNDUS_DATA_ROOT", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def drive_test() -> list[tuple[Path, Path, Path, Path]]:
    """(image, 1st manual, 2nd manual, FOV mask) of the 20 DRIVE test images."""
    root = data_root() / "DRIVE" / "test"
    rows = []
    for image in sorted((root / "images").glob("*_test.tif")):
        number = image.name.split("_")[0]
        rows.append(
            (
                image,
                root / "1st_manual" / f"{number}_manual1.gif",
                root / "2nd_manual" / f"{number}_manual2.gif",
                root / "mask" / f"{number}_test_mask.gif",
            )
        )
    return rows


def upscale(mask: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upscaling of the 0/1 map thresholded at 0.5 (smooth edges, as a sharper photo would give)."""
    return cv2.resize(mask.astype(np.float32), None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR) >= 0.5


def timed(mask: np.ndarray, fov: np.ndarray) -> tuple[float, float]:
    """(wall, CPU) seconds of one measure_mask call (CPU time is what a shared, loaded machine keeps)."""
    wall, cpu = time.perf_counter(), time.process_time()
    measure_mask(mask, fov)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(_: argparse.Namespace) -> None:
    rows = drive_test()[:5]
    measure_mask(read_binary_mask(rows[0][1]), read_binary_mask(rows[0][3]))  # skan's JIT, once per process
    small = []
    for _, label, _, fov in rows:
        mask, fov_mask = read_binary_mask(label), read_binary_mask(fov)
        small.append(timed(mask, fov_mask))
    big = []
    for _, label, _, fov in rows[:3]:
        size = (3504, 2336)
        mask = cv2.resize(read_binary_mask(label).astype(np.float32), size) >= 0.5
        fov_mask = cv2.resize(read_binary_mask(fov).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        big.append(timed(mask, fov_mask))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| mask | n | wall s, median | wall s, max | CPU s, median | CPU s, max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, times in (("DRIVE 565x584 (1st manual)", small), ("3504x2336 (label resized)", big)):
        wall, cpu = zip(*times, strict=True)
        cells = [statistics.median(wall), max(wall), statistics.median(cpu), max(cpu)]
        print(f"| {name} | {len(times)} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


def invariance(_: argparse.Namespace) -> None:
    per_factor: dict[int, list[dict]] = {1: [], 2: [], 4: []}
    for _, label, _, fov in drive_test():
        mask, fov_mask = read_binary_mask(label), read_binary_mask(fov)
        for factor in per_factor:
            big_fov = (
                cv2.resize(fov_mask.astype(np.uint8), None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) > 0
            )
            per_factor[factor].append(measure_mask(upscale(mask, factor) if factor > 1 else mask, big_fov))
    print("| measure | 1x mean | 2x mean | 4x mean | max abs rel. diff 2x vs 1x | 4x vs 1x |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in DIMENSIONLESS:
        values = {k: np.array([f[name] for f in v], dtype=np.float64) for k, v in per_factor.items()}
        diffs = [np.nanmax(np.abs(values[k] / values[1] - 1.0)) for k in (2, 4)]
        means = " | ".join(f"{np.nanmean(values[k]):.4g}" for k in per_factor)
        print(f"| {name} | {means} | {diffs[0]:.1%} | {diffs[1]:.1%} |")


def agreement(reference: list[dict], other: list[dict], name: str) -> tuple[float, float, float]:
    a = np.array([f[name] for f in reference], dtype=np.float64)
    b = np.array([f[name] for f in other], dtype=np.float64)
    return float(np.nanmean(a)), float(np.nanmean(b - a)), float(np.corrcoef(a, b)[0, 1])


def observers(args: argparse.Namespace) -> None:
    segmenter = Segmenter(args.model)
    first, second, model = [], [], []
    for image, manual1, manual2, fov in drive_test():
        fov_mask = read_binary_mask(fov)
        first.append(measure_mask(read_binary_mask(manual1), fov_mask))
        second.append(measure_mask(read_binary_mask(manual2), fov_mask))
        model.append(measure_mask(segmenter.segment(read_image(image), fov_mask).mask, fov_mask))
    print(f"model: {segmenter.bundle.root}")
    print("| measure | 1st observer mean | model − 1st: bias | r | 2nd − 1st: bias | r |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in COMPARED:
        mean, model_bias, model_r = agreement(first, model, name)
        _, human_bias, human_r = agreement(first, second, name)
        print(f"| {name} | {mean:.4g} | {model_bias:+.4g} | {model_r:.2f} | {human_bias:+.4g} | {human_r:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench").set_defaults(run=bench)
    sub.add_parser("invariance").set_defaults(run=invariance)
    obs = sub.add_parser("observers")
    obs.add_argument("--model", type=Path, default=DEFAULT_BUNDLE)
    obs.set_defaults(run=observers)
    args = parser.parse_args()
    if not drive_test():
        sys.exit(f"no DRIVE test set under {data_root()}")
    args.run(args)


if __name__ == "__main__":
    main()
