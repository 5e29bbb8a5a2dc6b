"""Cross-camera figures of a bundle, through the product path: ``fundus-infer`` then the project's evaluation.

    python scripts/cross_camera.py --model unet-multicamera --out runs/cross-camera/unet-multicamera
    python scripts/cross_camera.py --model runs/loco-stare/bundle --sets stare-all --out runs/cross-camera/loco

Each set is a folder of photographs segmented by ``fundus-infer`` (FOV computed from the photograph,
``--scale`` as given) and scored by ``python -m fundus_vessels.train.evaluate --predictions`` (1st
observer, FOV, pooled, the bundle's threshold). The sets:

- ``drive-test``: DRIVE 01–20, official FOV masks (the default's training never sees them);
- ``chase-heldout``: CHASE_DB1 subjects 03 and 10, the per-dataset validation split of seed 0, so
  held out of every run trained with ``--val-split per_dataset`` (the default's);
- ``stare-test``: STARE's last ten photographs (its training uses the first ten only);
- ``stare-all``: all twenty STARE photographs (for a model that never trained on STARE);
- ``drive-x4``: DRIVE test enlarged 4x (2260x2336, labels and masks by nearest neighbour): the
  scale rule on a 2000-4000 px frame, where the FOV is ~2160 px across.

Writes ``OUT/<set>/metrics.json`` per set and ``OUT/table.md`` / ``OUT/table.json`` with the
commands that made each row.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.datasets import dataset_files
from fundus_vessels.runtime.imageio import write_image

CHASE_HELDOUT = ("03", "10")
SETS = ("drive-test", "chase-heldout", "stare-test", "stare-all", "drive-x4")


def link_folder(folder: Path, pairs: list[tuple[Path, Path]]) -> str:
    """A ``folder:`` dataset of symlinks (images/, labels/), for sets without their own split."""
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for image, label in pairs:
        for target, link in (
            (image, folder / "images" / image.name),
            (label, folder / "labels" / (image.stem + ".png")),
        ):
            if not link.exists():
                link.symlink_to(target.resolve())
    return f"folder:{folder}"


def enlarged_drive(root: Path, folder: Path, factor: int = 4) -> str:
    """DRIVE test enlarged ``factor`` times (photographs bicubic, label and FOV nearest) as a ``folder:`` set."""
    for sub in ("images", "labels", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for sample in dataset_files(root, "drive", "test"):
        target = folder / "images" / f"{sample.image.stem}.png"
        if target.exists():
            continue
        photo, truth, fov = sample.load()
        size = (photo.shape[1] * factor, photo.shape[0] * factor)
        big = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
        write_image(folder / "labels" / target.name, cv2.resize(truth.astype(np.uint8) * 255, size, cv2.INTER_NEAREST))
        write_image(folder / "masks" / target.name, cv2.resize(fov.astype(np.uint8) * 255, size, cv2.INTER_NEAREST))
        write_image(target, big)
    return f"folder:{folder}"


def set_source(name: str, root: Path, work: Path) -> tuple[Path, str, str]:
    """``(input folder for fundus-infer, --data spec for evaluate, --split)`` of a set."""
    if name == "drive-test":
        return root / "DRIVE" / "test" / "images", "drive", "test"
    if name == "stare-test":
        folder = work / "stare-test"
        link_folder(folder, [(f.image, f.label) for f in dataset_files(root, "stare", "test")])
        return folder / "images", "stare", "test"  # scored with STARE's own FOV masks
    if name == "stare-all":
        files = dataset_files(root, "stare", "training") + dataset_files(root, "stare", "test")
        spec = link_folder(work / "stare-all", [(f.image, f.label) for f in files])
        return work / "stare-all" / "images", spec, "test"
    if name == "chase-heldout":
        files = [f for f in dataset_files(root, "chase", "training") if f.group.split("_")[1] in CHASE_HELDOUT]
        spec = link_folder(work / "chase-heldout", [(f.image, f.label) for f in files])
        return work / "chase-heldout" / "images", spec, "test"
    if name == "drive-x4":
        spec = enlarged_drive(root, work / "drive-x4")
        return work / "drive-x4" / "images", spec, "test"
    raise ValueError(f"unknown set {name!r}; choose from {list(SETS)}")


def run(command: list[str]) -> float:
    """Run ``command`` (echoed), fail loudly; returns its wall-clock seconds."""
    print("+", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def score_set(name: str, args: argparse.Namespace) -> dict:
    """Segment one set with fundus-infer and score it; returns the table row."""
    out = Path(args.out) / name
    images, spec, split = set_source(name, Path(args.data_root), Path(args.out) / "inputs")
    infer = ["fundus-infer", str(images), "-o", str(out / "infer"), "--model", args.model, "--quiet"]
    infer += ["--scale", args.scale, "--threads", str(args.threads), "--save", "prob"]
    seconds = run(infer)
    evaluate = [sys.executable, "-m", "fundus_vessels.train.evaluate", "--predictions", str(out / "infer")]
    evaluate += ["--model", args.model, "--data", spec, "--split", split, "--data-root", args.data_root]
    evaluate += ["--out", str(out / "scored"), "--panels", "0"]
    run(evaluate)
    metrics = json.loads((out / "scored" / "metrics.json").read_text())
    summary = json.loads((out / "infer" / "summary.json").read_text())
    pooled = metrics["fov"]["pooled"]
    factors = [e["scale"]["factor"] for e in summary["images"] if "scale" in e]
    return {
        "set": name,
        "images": len(metrics["images"]),
        "miou": pooled["miou"],
        "f1": pooled["f1"],
        "auc": pooled["auc"],
        "scale_factor_median": float(np.median(factors)) if factors else None,
        "seconds_per_image": seconds / max(1, len(metrics["images"])),
        "commands": [shlex.join(infer), shlex.join(evaluate)],
    }


def markdown(rows: list[dict], model: str, scale: str) -> str:
    lines = [
        f"`{model}`, `--scale {scale}`, through `fundus-infer` (FOV, pooled, the bundle's threshold):",
        "",
        "| photographs | images | MIoU | F1 | AUC | scale factor (median) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        factor = "—" if r["scale_factor_median"] is None else f"{r['scale_factor_median']:.3f}"
        lines.append(f"| {r['set']} | {r['images']} | {r['miou']:.4f} | {r['f1']:.4f} | {r['auc']:.4f} | {factor} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help="shipped bundle name or bundle folder")
    parser.add_argument("--sets", default="drive-test,chase-heldout,stare-test,drive-x4", help=f"from {SETS}")
    parser.add_argument("--scale", default="auto", help="fundus-infer --scale")
    parser.add_argument("--threads", type=int, default=2, help="fundus-infer --threads")
    parser.add_argument("--data-root", default=os.environ.get("FUNDUS_DATA_ROOT", "../shared/data"))
    parser.add_argument("-o", "--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    rows = [score_set(name, args) for name in args.sets.split(",") if name]
    out = Path(args.out)
    table = markdown(rows, args.model, args.scale)
    (out / "table.md").write_text(table)
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
