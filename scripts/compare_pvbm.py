"""Our box-counting dimension against PVBM's D0 on the 20 DRIVE test labels (the measure both define alike).

    pip install --no-deps pvbm   # its FractalAnalysis needs numpy only; the package's own deps pull torch + CUDA
    python scripts/compare_pvbm.py [--data-root ../shared/data] [--out docs/results/pvbm_fractal.json]

PVBM (``PVBM.FractalAnalysis.MultifractalVBMs().compute_multifractals``) wants an N×N map: each 1st-observer
label is zero-padded to a square. Ours is ``fractal_dimension_mask`` of ``fundus_vessels.runtime.measure``
inside the official FOV mask. Their other measures (tortuosity, length, branching) are defined in a ring around the
optic disc, which needs a disc detector; they are not compared.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.datasets import drive_files
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.measure import measure_mask


def square(mask: np.ndarray) -> np.ndarray:
    """``mask`` zero-padded at the bottom/right to a square."""
    side = max(mask.shape)
    out = np.zeros((side, side), dtype=mask.dtype)
    out[: mask.shape[0], : mask.shape[1]] = mask
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/pvbm_fractal.json"))
    args = parser.parse_args(argv)
    from PVBM.FractalAnalysis import MultifractalVBMs

    # one grid orientation: rotated by skimage (bilinear), a map is no longer {0, 1} and PVBM asserts
    pvbm = MultifractalVBMs(optimize=False)
    rows = []
    for sample in drive_files(args.data_root, "test"):
        _, truth, fov = sample.load()
        ours = measure_mask(truth & fov, fov)["fractal_dimension_mask"]
        vessels = square((truth & fov).astype(np.float64))  # float 0/1: skimage would read uint8 1 as 1/255
        d0 = float(pvbm.compute_multifractals(vessels)[0])
        rows.append({"image": sample.name, "ours": ours, "pvbm_d0": d0})
        print(f"{sample.name}: ours {ours:.4f}  PVBM D0 {d0:.4f}", flush=True)
    ours, theirs = np.array([r["ours"] for r in rows]), np.array([r["pvbm_d0"] for r in rows])
    summary = {
        "images": len(rows),
        "mean_ours": float(ours.mean()),
        "mean_pvbm_d0": float(theirs.mean()),
        "bias_ours_minus_pvbm": float((ours - theirs).mean()),
        "max_abs_difference": float(np.abs(ours - theirs).max()),
        "pearson_r": float(np.corrcoef(ours, theirs)[0, 1]),
        "rows": rows,
        "command": "python scripts/compare_pvbm.py",
    }
    write_json(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
