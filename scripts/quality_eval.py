"""Set and check the quality gate's thresholds on data: real photographs, degraded copies, non-fundus images.

For every DRIVE and CHASE_DB1 photograph under ``--data-root`` it grades the original and degraded
copies (blur, darkening, overexposure, noise, low-quality JPEG, half frames), then grades the
sample images shipped inside scikit-image and synthetic non-fundus scenes. Each case has an
expected verdict and reason; the script prints the confusion table (expected vs got), every
mismatch, and each measure's range per case, and writes them to ``--out`` as JSON.
Exit status 1 when any case misses its expectation.

    python scripts/quality_eval.py --data-root ../shared/data --out docs/results/quality_eval.json
    python scripts/quality_eval.py --bench     # ms per assessment: a DRIVE image and a 3504x2336 one
    python scripts/quality_eval.py --f1        # the shipped model's F1 on DRIVE test 01, 06, 11, 16 per case
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.datasets import DatasetError, dataset_files
from fundus_vessels.runtime.imageio import read_image
from fundus_vessels.runtime.quality import NOT_FUNDUS, assess_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.runtime.timing import timed_calls

# skimage.data samples that are photographs (or drawings) of anything but a fundus; "retina" is one
SKIMAGE_NON_FUNDUS = (
    "astronaut", "binary_blobs", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
    "microaneurysms", "moon", "page", "rocket", "shepp_logan_phantom", "text",
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """A way to make a test image, the verdicts it may get and the reason it must carry."""

    name: str
    make: Callable[[np.ndarray, dict], np.ndarray]  # (photograph, its measures) -> image
    verdicts: tuple[str, ...] | None  # None: shown, not checked
    reason: str | None  # must appear among the reasons (prefix match); None: no requirement


def _blur(fraction: float) -> Callable[[np.ndarray, dict], np.ndarray]:
    return lambda im, m: cv2.GaussianBlur(im, (0, 0), fraction * m["fov_diameter_px"])


def _scaled(im: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(im.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def _gain(factor: float) -> Callable[[np.ndarray, dict], np.ndarray]:
    return lambda im, m: _scaled(im, factor)


def _noise(sigma: float) -> Callable[[np.ndarray, dict], np.ndarray]:
    def make(im: np.ndarray, m: dict) -> np.ndarray:
        rng = np.random.default_rng(0)
        return np.clip(im + rng.normal(0.0, sigma, im.shape) + 0.5, 0, 255).astype(np.uint8)

    return make


def _jpeg(quality: int) -> Callable[[np.ndarray, dict], np.ndarray]:
    def make(im: np.ndarray, m: dict) -> np.ndarray:
        _, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(im, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, quality],
        )
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    return make


GOOD = ("good", "usable")
BAD = ("usable", "reject")
# Expected verdicts follow what the degradation does to the shipped model's F1 on DRIVE test images
# 01, 06, 11, 16 (original 0.81; README, quality section): usable down to about 0.65, reject below.
DEGRADATIONS = (
    Case("original", lambda im, m: im, GOOD, None),
    Case("blur 0.25% of FOV diameter", _blur(0.0025), None, None),
    Case("blur 0.5%", _blur(0.005), ("reject",), "out of focus"),
    Case("blur 1%", _blur(0.01), ("reject",), "out of focus"),
    Case("blur 2%", _blur(0.02), ("reject",), "out of focus"),
    Case("darkened x0.5", _gain(0.5), GOOD, None),
    Case("darkened x0.25", _gain(0.25), BAD, "too dark"),
    Case("darkened x0.12", _gain(0.12), ("reject",), "too dark"),
    Case("exposure x2", _gain(2.0), None, None),
    Case("overexposed x3", _gain(3.0), None, None),
    Case("overexposed x4", _gain(4.0), BAD, "overexposed"),
    Case("overexposed x6", _gain(6.0), ("reject",), "overexposed"),
    Case("noise sigma 8", _noise(8.0), BAD, "noisy"),
    Case("noise sigma 25", _noise(25.0), ("reject",), "noisy"),
    Case("noise sigma 50", _noise(50.0), ("reject",), "noisy"),
    Case("JPEG quality 30", _jpeg(30), GOOD, None),
    Case("JPEG quality 10", _jpeg(10), BAD, "compression artefacts"),
    Case("JPEG quality 3", _jpeg(3), ("reject",), "compression artefacts"),
    Case(
        "left half",
        lambda im, m: np.ascontiguousarray(im[:, : im.shape[1] // 2]),
        ("reject",),
        "field of view cut off",
    ),
    Case(
        "top half",
        lambda im, m: np.ascontiguousarray(im[: im.shape[0] // 2]),
        ("reject",),
        "field of view cut off",
    ),
)


def _scene(seed: int, kind: str, height: int = 584, width: int = 565) -> np.ndarray:
    """Synthetic non-fundus scenes: flat, noise, gradient, checkerboard, shapes, a blue disc, stripes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "black":
        return np.zeros((height, width, 3), np.uint8)
    if kind == "white":
        return np.full((height, width, 3), 255, np.uint8)
    if kind == "gray":
        return np.full((height, width, 3), 128, np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "gradient":
        ramp = (xx / width * 255)[..., None] * np.array([1.0, 0.6, 0.3])
        return ramp.astype(np.uint8)
    if kind == "checkerboard":
        board = ((yy // 40 + xx // 40) % 2).astype(bool)
        return np.where(
            board[..., None],
            np.array([200, 60, 40], np.uint8),
            np.array([30, 30, 30], np.uint8),
        )
    if kind == "shapes":
        image = np.full((height, width, 3), 90, np.uint8)
        for _ in range(25):
            colour = [int(c) for c in rng.integers(0, 256, 3)]
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(image, centre, int(rng.integers(10, 80)), colour, -1)
        return image
    if kind == "blue disc":
        image = np.zeros((height, width, 3), np.uint8)
        cv2.circle(
            image,
            (width // 2, height // 2),
            int(0.45 * min(height, width)),
            (40, 80, 200),
            -1,
        )
        return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    if kind == "stripes":
        return np.repeat((((xx // 8) % 2) * 220)[..., None], 3, axis=2).astype(np.uint8)
    raise ValueError(kind)


SCENES = (
    "black",
    "white",
    "gray",
    "noise",
    "gradient",
    "checkerboard",
    "shapes",
    "blue disc",
    "stripes",
)


def photographs(data_root: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every DRIVE (train + test) and CHASE_DB1 photograph under ``data_root``."""
    for dataset, split in (
        ("drive", "training"),
        ("drive", "test"),
        ("chase", "training"),
        ("chase", "test"),
    ):
        try:
            items = dataset_files(data_root, dataset, split)
        except DatasetError as exc:
            print(f"left out: {exc}", file=sys.stderr)
            continue
        for item in items:
            yield f"{dataset}/{Path(item.image).name}", read_image(item.image)


def non_fundus() -> Iterator[tuple[str, np.ndarray]]:
    """scikit-image's sample photographs and the synthetic scenes above."""
    import skimage.data

    for name in SKIMAGE_NON_FUNDUS:
        image = getattr(skimage.data, name)()
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        elif image.dtype != np.uint8:
            image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        yield f"skimage.data.{name}", image
    for seed, kind in enumerate(SCENES):
        yield f"scene {kind}", _scene(seed, kind)


def grade(expected: tuple[str, ...] | None, reason: str | None, quality: dict) -> bool:
    if expected is None:
        return True
    ok = quality["verdict"] in expected
    return ok and (reason is None or any(r.startswith(reason) for r in quality["reasons"]))


def bench(data_root: Path, rounds: int = 30) -> None:
    """Median and best time of :func:`assess_image` on DRIVE test 01 (565x584) and on it resized to 3504x2336."""
    drive = read_image(dataset_files(data_root, "drive", "test")[0].image)
    large = cv2.resize(drive, (3504, 2336), interpolation=cv2.INTER_CUBIC)
    for name, image in (("DRIVE 565x584", drive), ("3504x2336", large)):
        times = timed_calls(lambda image=image: assess_image(image), rounds)
        print(
            f"{name}: median {1000 * float(np.median(times)):.1f} ms, best {1000 * min(times):.1f} ms ({rounds} runs)"
        )


def graded_rows(data_root: Path, limit: int | None) -> list[dict]:
    """One row per (image, case): its quality, what was expected and whether it was met."""

    def row(image: str, case: str, verdicts: tuple[str, ...] | None, reason: str | None, picture: np.ndarray) -> dict:
        quality = assess_image(picture).to_dict()
        expected = "/".join(verdicts) if verdicts else "(shown)"
        return {"image": image, "case": case, "expected": expected, **quality, "ok": grade(verdicts, reason, quality)}

    rows = []
    for index, (name, photo) in enumerate(photographs(data_root)):
        if limit is not None and index >= limit:
            break
        measures = assess_image(photo).measures
        rows += [row(name, case.name, case.verdicts, case.reason, case.make(photo, measures)) for case in DEGRADATIONS]
    try:
        import skimage.data
    except ImportError:
        print("scikit-image not installed: its samples are left out", file=sys.stderr)
    else:
        rows.append(row("skimage.data.retina", "fundus (scikit-image)", GOOD, None, skimage.data.retina()))
        rows += [row(name, "not a fundus", ("reject",), NOT_FUNDUS, image) for name, image in non_fundus()]
    rows.append(row("synthetic fundus", "fundus (synthetic)", GOOD, None, make_synthetic_fundus().image_rgb))
    return rows


def report(rows: list[dict], out: Path | None) -> int:
    """Print the confusion table and every miss; write them with each case's measure ranges to ``out``."""
    table: dict[str, dict] = {}
    for row in rows:
        counts = table.setdefault(row["case"], {"expected": row["expected"], "good": 0, "usable": 0, "reject": 0})
        counts[row["verdict"]] += 1
        counts["misses"] = counts.get("misses", 0) + (not row["ok"])
    print("| case | expected | good | usable | reject | misses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case, c in table.items():
        print(f"| {case} | {c['expected']} | {c['good']} | {c['usable']} | {c['reject']} | {c['misses']} |")
    mismatches = [r for r in rows if not r["ok"]]
    for row in mismatches:
        print(f"MISS {row['image']} [{row['case']}]: {row['verdict']} {row['reasons']}", file=sys.stderr)
    ranges = {}
    for case in table:
        values = [r["measures"] for r in rows if r["case"] == case]
        ranges[case] = {
            k: [round(min(v[k] for v in values), 4), round(max(v[k] for v in values), 4)] for k in values[0]
        }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"table": table, "mismatches": mismatches, "ranges": ranges}, indent=1) + "\n")
    print(f"{len(rows) - len(mismatches)}/{len(rows)} cases as expected", file=sys.stderr)
    return 1 if mismatches else 0


def model_f1(data_root: Path) -> None:
    """Mean and worst F1 (inside the official FOV) of the shipped model on degraded DRIVE test 01, 06, 11, 16."""
    from fundus_vessels.runtime.imageio import read_binary_mask
    from fundus_vessels.runtime.metrics import ConfusionMatrix
    from fundus_vessels.runtime.pipeline import Segmenter

    segmenter = Segmenter(threads=1)
    scores: dict[str, list[float]] = {}
    for item in dataset_files(data_root, "drive", "test")[::5]:
        photo, truth, fov = read_image(item.image), read_binary_mask(item.label), read_binary_mask(item.mask)
        measures = assess_image(photo).measures
        for case in DEGRADATIONS[:-2]:  # half frames change the size: no label to score against
            matrix = ConfusionMatrix()
            matrix.update(truth, segmenter.segment(case.make(photo, measures), fov).mask, fov)
            scores.setdefault(case.name, []).append(matrix.compute()["f1"])
    for name, values in scores.items():
        print(f"{name}: F1 mean {np.mean(values):.3f}, worst {min(values):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, help="write the table, mismatches and measure ranges here (JSON)")
    parser.add_argument("--limit", type=int, help="only the first N photographs (a quick look)")
    parser.add_argument("--bench", action="store_true", help="only time the assessment (see bench())")
    parser.add_argument("--f1", action="store_true", help="only score the shipped model on degraded DRIVE images")
    args = parser.parse_args(argv)
    if args.bench:
        bench(args.data_root)
        return 0
    if args.f1:
        model_f1(args.data_root)
        return 0
    return report(graded_rows(args.data_root, args.limit), args.out)


if __name__ == "__main__":
    sys.exit(main())
