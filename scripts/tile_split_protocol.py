"""The paper's protocol, reproduced to compare with the official one.

The paper cuts its images into 256×256 tiles and splits the *tiles* 8:2 at random, so tiles of one
photograph land on both sides. This script builds that split as two plain image/label folders
(train tiles, test tiles) from DRIVE (all 40 images) and CHASE_DB1 (subjects 01–10), which
``train/run.py --data folder:...`` and ``train.evaluate --data folder:...`` then consume.

    python scripts/tile_split_protocol.py --data-root ../shared/data --out runs/tilesplit/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from fundus_vessels.runtime.imageio import write_image, write_json
from fundus_vessels.runtime.tiling import make_grid
from fundus_vessels.train.datasets import load_chase, load_drive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--out", default="runs/tilesplit/data")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root, out = Path(args.data_root), Path(args.out)
    samples = load_drive(root, "training") + load_drive(root, "test") + load_chase(root)
    tiles = []
    for s in samples:
        grid = make_grid(s.image.shape, args.tile, 0)
        for y, x in grid.origins:
            sl = (slice(y, y + args.tile), slice(x, x + args.tile))
            tiles.append((f"{s.name}_y{y}_x{x}", s.image[sl], s.label[sl], s.fov[sl]))
    order = np.random.default_rng(args.seed).permutation(len(tiles))
    n_test = round(args.test_fraction * len(tiles))
    split = {"test": sorted(order[:n_test].tolist()), "train": sorted(order[n_test:].tolist())}
    for part, indices in split.items():
        for i in indices:
            name, image, label, fov = tiles[i]
            write_image(out / part / "images" / f"{name}.png", image)
            write_image(out / part / "labels" / f"{name}.png", label.astype(np.uint8) * 255)
            write_image(out / part / "masks" / f"{name}.png", fov.astype(np.uint8) * 255)
    write_json(
        out / "split.json",
        {
            "tiles": len(tiles),
            "seed": args.seed,
            "test_fraction": args.test_fraction,
            "images": [s.name for s in samples],
            "test_tiles": [tiles[i][0] for i in split["test"]],
        },
    )
    print(f"{len(tiles)} tiles from {len(samples)} images: {len(split['train'])} train, {n_test} test -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
