"""The image quality gate (runtime/quality.py, cpp/src/quality.cpp) and ``fundus-infer --quality``.

Real photographs pass, degraded and non-fundus ones are refused with the right reason, the verdict
does not change with image size, and the C++ binary gives the same verdicts and measures.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.datasets import dataset_files
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_image, write_image
from fundus_vessels.runtime.quality import (
    CHECKS,
    NOT_FUNDUS,
    assess_image,
    assess_scale,
    assess_vessels,
    image_measures,
)
from fundus_vessels.runtime.scale import ScaleDecision
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

MEASURE_TOLERANCE = 1e-4  # relative, Python vs C++ (measured: 1.3e-6 on 60 DRIVE + CHASE_DB1 images)


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    return make_synthetic_fundus(584, 565, seed=3).image_rgb


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=interpolation)


def has_reason(quality, prefix: str) -> bool:
    return any(r.startswith(prefix) for r in quality.reasons)


def non_fundus_scenes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:400, 0:500]
    shapes = np.full((400, 500, 3), 90, np.uint8)
    for _ in range(20):
        centre = (int(rng.integers(0, 500)), int(rng.integers(0, 400)))
        cv2.circle(shapes, centre, int(rng.integers(10, 80)), [int(c) for c in rng.integers(0, 256, 3)], -1)
    blue_disc = np.zeros((400, 500, 3), np.uint8)
    cv2.circle(blue_disc, (250, 200), 180, (40, 80, 200), -1)
    return {
        "black": np.zeros((300, 300, 3), np.uint8),
        "white": np.full((300, 300, 3), 255, np.uint8),
        "noise": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
        "checkerboard": np.where((((yy // 40) + (xx // 40)) % 2)[..., None] == 1, 200, 30).astype(np.uint8),
        "shapes": shapes,
        "blue disc": blue_disc,
        "gray fundus-shaped disc": cv2.cvtColor(make_synthetic_fundus(300, 300).image_rgb, cv2.COLOR_RGB2GRAY),
    }


def test_synthetic_fundus_is_good(fundus: np.ndarray) -> None:
    quality = assess_image(fundus)
    assert quality.verdict == "good", quality
    after_segmentation = {"vessel_fraction", "vessel_connected", "scale_in_domain"}
    assert set(quality.measures) == {c.measure for c in CHECKS} - after_segmentation | {"fov_diameter_px"}


@pytest.mark.parametrize("name", list(non_fundus_scenes()))
def test_synthetic_non_fundus_scenes_are_rejected(name: str) -> None:
    quality = assess_image(non_fundus_scenes()[name])
    assert quality.verdict == "reject" and has_reason(quality, NOT_FUNDUS), quality


def test_skimage_samples() -> None:
    data = pytest.importorskip("skimage.data")
    for name in ("astronaut", "chelsea", "coffee", "camera", "coins", "moon", "hubble_deep_field", "rocket"):
        quality = assess_image(getattr(data, name)())
        assert quality.verdict == "reject" and has_reason(quality, NOT_FUNDUS), (name, quality)
    assert assess_image(data.retina()).verdict == "good"  # the one fundus photograph among them


@pytest.mark.parametrize(
    ("degrade", "reason"),
    [
        (lambda im: cv2.GaussianBlur(im, (0, 0), 5.0), "out of focus"),
        (lambda im: (im * 0.1).astype(np.uint8), "too dark"),
        (lambda im: np.clip(im * 6.0, 0, 255).astype(np.uint8), "overexposed"),
        (lambda im: np.clip(im + np.random.default_rng(0).normal(0, 50, im.shape), 0, 255).astype(np.uint8), "noisy"),
        (lambda im: np.ascontiguousarray(im[:, : im.shape[1] // 2]), "field of view cut off"),
        (lambda im: np.ascontiguousarray(im[: im.shape[0] // 2]), "field of view cut off"),
    ],
    ids=["blur", "dark", "overexposed", "noise", "left-half", "top-half"],
)
def test_degraded_fundus_is_rejected_with_its_reason(fundus: np.ndarray, degrade, reason: str) -> None:
    quality = assess_image(degrade(fundus))
    assert quality.verdict == "reject" and has_reason(quality, reason), quality


def test_low_quality_jpeg_is_rejected_as_compressed(fundus: np.ndarray) -> None:
    _, data = cv2.imencode(".jpg", fundus, [cv2.IMWRITE_JPEG_QUALITY, 3])
    quality = assess_image(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
    assert quality.verdict == "reject" and has_reason(quality, "compression artefacts"), quality


def test_verdict_is_the_same_at_half_and_double_size(fundus: np.ndarray) -> None:
    verdicts = {factor: assess_image(resized(fundus, factor)).verdict for factor in (0.5, 1.0, 2.0)}
    assert set(verdicts.values()) == {"good"}, verdicts
    blurred = cv2.GaussianBlur(fundus, (0, 0), 5.0)
    assert {assess_image(resized(blurred, f)).verdict for f in (0.5, 1.0, 2.0)} == {"reject"}


def test_16_bit_and_gray_inputs(fundus: np.ndarray) -> None:
    wide = fundus.astype(np.uint16) * 257
    assert image_measures(wide) == pytest.approx(image_measures(fundus), rel=1e-6)
    gray = assess_image(cv2.cvtColor(fundus, cv2.COLOR_RGB2GRAY))
    assert gray.verdict == "reject" and f"{NOT_FUNDUS}: colour not fundus-like" in gray.reasons


def test_vessel_plausibility() -> None:
    synthetic = make_synthetic_fundus(584, 565, seed=1)
    quality = assess_vessels(assess_image(synthetic.image_rgb), synthetic.vessels, synthetic.fov)
    assert quality.verdict == "good" and quality.measures["vessel_connected"] > 0.9, quality
    speckle = np.random.default_rng(0).random(synthetic.fov.shape) < 0.08
    fragmented = assess_vessels(assess_image(synthetic.image_rgb), speckle & synthetic.fov, synthetic.fov)
    assert fragmented.verdict == "reject" and has_reason(fragmented, "implausible vessel map"), fragmented
    empty = assess_vessels(assess_image(synthetic.image_rgb), np.zeros_like(synthetic.fov), synthetic.fov)
    assert "implausible vessel map: too few vessels" in empty.reasons


def real_photographs(root: Path, every: int) -> list[Path]:
    files = [f.image for split in ("training", "test") for f in dataset_files(root, "drive", split)]
    files += [f.image for f in dataset_files(root, "chase", "training")]
    return files[::every]


def test_real_photographs_pass_at_every_size(data_root: Path) -> None:
    for path in real_photographs(data_root, 5):
        image = read_image(path)
        verdicts = [assess_image(resized(image, f)).verdict for f in (0.5, 1.0, 2.0)]
        assert verdicts[0] in ("good", "usable") and len(set(verdicts)) == 1, (path.name, verdicts)


def test_cli_refuse_writes_nothing_for_a_rejected_image(tmp_path: Path, fundus: np.ndarray) -> None:
    write_image(tmp_path / "in" / "fundus.png", resized(fundus, 0.5))
    write_image(tmp_path / "in" / "scene.png", non_fundus_scenes()["shapes"])
    out = tmp_path / "out"
    assert cli.main([str(tmp_path / "in"), "-o", str(out), "--quality", "refuse", "--quiet", "--save", "mask"]) == 4
    summary = json.loads((out / "summary.json").read_text())
    entries = {Path(e["file"]).name: e for e in summary["images"]}
    assert summary["quality"] == "refuse" and summary["succeeded"] == 1 and summary["refused"] == 1
    assert entries["scene.png"]["refused"] is True and entries["scene.png"]["outputs"] == {}
    assert entries["scene.png"]["quality"]["verdict"] == "reject"
    assert not (out / "scene_mask.png").exists() and (out / "fundus_mask.png").exists()
    assert "vessel_fraction" in entries["fundus.png"]["quality"]["measures"]

    flagged = tmp_path / "flagged"
    assert cli.main([str(tmp_path / "in"), "-o", str(flagged), "--quiet", "--save", "mask"]) == 0
    assert (flagged / "scene_mask.png").exists()
    off = tmp_path / "off"
    assert cli.main([str(tmp_path / "in" / "scene.png"), "-o", str(off), "--quality", "off", "--quiet"]) == 0
    assert "quality" not in json.loads((off / "summary.json").read_text())["images"][0]


def test_cpp_gives_the_same_verdicts_and_measures(cpp_binary: Path, data_root: Path, tmp_path: Path) -> None:
    inputs = real_photographs(data_root, 20)  # DRIVE 21, DRIVE 01, CHASE 01L
    half = tmp_path / "half.png"
    write_image(half, np.ascontiguousarray(read_image(inputs[0])[:, :282]))
    scene = tmp_path / "scene.png"
    write_image(scene, non_fundus_scenes()["shapes"])
    inputs += [half, scene]
    out = tmp_path / "cpp"
    args = [str(cpp_binary), *map(str, inputs), "-o", str(out), "--quality", "refuse", "--quiet", "--save", "mask"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 4, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refused"] == 2 and summary["succeeded"] == len(inputs) - 2
    for entry in summary["images"]:
        image = read_image(entry["file"])
        python = assess_image(image)
        if not entry.get("refused"):  # grade the C++ vessel map as Python would
            python = assess_vessels(python, read_image(out / entry["outputs"]["mask"]) > 0, fov_from_image(image))
            python = assess_scale(python, ScaleDecision(**entry["scale"]))  # and its scale, as Python would
        cpp = entry["quality"]
        assert (cpp["verdict"], cpp["reasons"]) == (python.verdict, python.reasons), entry["file"]
        assert list(cpp["measures"]) == list(python.measures)
        for name, value in cpp["measures"].items():
            assert value == pytest.approx(python.measures[name], rel=MEASURE_TOLERANCE, abs=1e-6), (entry["file"], name)
    refused = {Path(e["file"]).name for e in summary["images"] if e.get("refused")}
    assert refused == {"half.png", "scene.png"} and not (out / "scene_mask.png").exists()
