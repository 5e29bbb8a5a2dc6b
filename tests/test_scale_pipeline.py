"""Scale normalisation through the runtime: Segmenter, fundus-infer --scale and summary.json (no data needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, BundleError, load_bundle
from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.pipeline import Segmenter
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

SCALE = {"reference_diameter": 540.0, "tolerance": 0.05, "factor_range": [0.1, 1.5]}


def bundle_with(tmp_path: Path, scale: object) -> Path:
    """A copy of the shipped bundle whose model.json holds ``scale`` (None: no scale section)."""
    root = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, root)
    meta = json.loads((root / "model.json").read_text())
    meta.pop("scale", None)
    if scale is not None:
        meta["scale"] = scale
    (root / "model.json").write_text(json.dumps(meta))
    return root


def test_a_large_photograph_is_segmented_at_the_reference_scale_and_returned_at_its_own(tmp_path: Path) -> None:
    fundus = make_synthetic_fundus(800, 780, seed=3)  # FOV ~730 px across: 1.35x DRIVE's
    segmenter = Segmenter(bundle_with(tmp_path, SCALE), threads=1)
    result = segmenter.segment(fundus.image_rgb)
    assert result.probability.shape == result.mask.shape == result.fov.shape == (800, 780)
    assert result.scale.method == "fov"
    assert result.scale.factor == pytest.approx(540 / result.scale.fov_diameter)
    assert 0.7 < result.scale.factor < 0.8 and result.scale.in_domain
    # the drawn vessel tree is found at both scales: scaling keeps the mask close to the unscaled one
    native = Segmenter(bundle_with(tmp_path / "n", SCALE), threads=1, scale="none").segment(fundus.image_rgb)
    assert native.scale.method == "none" and native.scale.factor == 1.0
    agree = np.count_nonzero(result.mask == native.mask) / result.mask.size
    assert agree > 0.95


def test_a_bundle_without_scale_section_runs_at_native_scale(tmp_path: Path) -> None:
    fundus = make_synthetic_fundus(400, 380, seed=1)
    result = Segmenter(bundle_with(tmp_path, None), threads=1).segment(fundus.image_rgb)
    assert result.scale.factor == 1.0 and result.scale.method == "none"
    assert "no scale reference" in result.scale.note


def test_a_fixed_factor_and_a_photograph_without_visible_fov(tmp_path: Path) -> None:
    segmenter = Segmenter(bundle_with(tmp_path, SCALE), threads=1, scale=0.5)
    fundus = make_synthetic_fundus(300, 280, seed=2)
    fixed = segmenter.segment(fundus.image_rgb)
    assert fixed.scale.method == "fixed" and fixed.scale.factor == 0.5 and fixed.mask.shape == (300, 280)
    # a frame filled edge to edge (no dark surround): the stated fallback, flagged out of domain
    crop = fundus.image_rgb[90:210, 90:190]
    fallback = Segmenter(segmenter.bundle, threads=1).segment(crop)
    assert fallback.scale.method == "image-size" and not fallback.scale.in_domain
    assert fallback.scale.factor == pytest.approx(540 / 120)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        ("x", "scale must be an object"),
        ({**SCALE, "reference_diameter": -1}, "scale.reference_diameter must be a finite number in [0, 4096]"),
        ({**SCALE, "reference_diameter": 5000}, "scale.reference_diameter must be a finite number in [0, 4096]"),
        ({**SCALE, "tolerance": 0.7}, "scale.tolerance must be a finite number in [0, 0.5)"),
        ({**SCALE, "factor_range": [1.2, 2]}, "scale.factor_range must be [low, high]"),
        ({**SCALE, "factor_range": "wide"}, "scale.factor_range must be [low, high]"),
        ({**SCALE, "extra": 1}, "scale.extra"),
    ],
)
def test_broken_scale_sections_are_refused_naming_the_key(tmp_path: Path, scale: object, message: str) -> None:
    with pytest.raises(BundleError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_bundle(bundle_with(tmp_path, scale))


def test_fundus_infer_records_the_scale_of_each_image(tmp_path: Path) -> None:
    image = tmp_path / "in" / "eye.png"
    write_image(image, make_synthetic_fundus(700, 660, seed=4).image_rgb)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fundus_vessels.runtime", str(image), "-o", str(out), "--quiet"]
    command += ["--model", str(bundle_with(tmp_path, SCALE)), "--threads", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    entry = json.loads((out / "summary.json").read_text())["images"][0]
    assert entry["scale"]["method"] == "fov" and 0.8 < entry["scale"]["factor"] < 0.9
    assert entry["quality"]["measures"]["scale_in_domain"] == 1.0


@pytest.mark.parametrize("value", ["big", "9"])
def test_fundus_infer_refuses_a_bad_scale_in_one_line(tmp_path: Path, value: str) -> None:
    command = [sys.executable, "-m", "fundus_vessels.runtime", "--demo", "-o", str(tmp_path), "--scale", value]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--scale" in proc.stderr and "Traceback" not in proc.stderr
