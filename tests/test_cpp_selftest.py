"""``fundus-infer --self-test`` of the C++ binary, held to the ONNX Runtime reference stored in the bundle.

The shipped bundle passes (OpenCV DNN FP32 within the FP32 tolerance of ONNX Runtime CPU FP32) and
says what it could not run; a reference whose numbers are off (sha256s updated, so it loads) fails
with exit 1; a changed, stale or absent reference is refused with exit 2 and the file named. The
shipped reference is what ``fundus-export selftest-reference`` writes today.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fundus_vessels.export.selftest_reference import FILES_KEY, FORMAT, write_reference
from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, load_bundle, sha256_file
from fundus_vessels.runtime.imageio import read_image


def self_test(binary: Path, bundle: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    done = subprocess.run(
        [str(binary), "--self-test", "-o", str(out), "--model", str(bundle), "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = out / "self-test.json"
    return done, (json.loads(report.read_text()) if report.is_file() else None)


@pytest.fixture()
def bundle_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEFAULT_BUNDLE, tmp_path / "bundle"))


def reregister(bundle_dir: Path, edit_reference=None) -> None:
    """Refresh every sha256 of the self-test reference, so it loads whatever was changed in it."""
    path = bundle_dir / "selftest" / "reference.json"
    reference = json.loads(path.read_text())
    for entry in [*reference.values(), *reference.get("scaled", {}).values()]:
        if isinstance(entry, dict) and "sha256" in entry:
            entry["sha256"] = sha256_file(path.parent / entry["path"])
    if edit_reference is not None:
        edit_reference(reference)
    path.write_text(json.dumps(reference, indent=2))
    bundle = load_bundle(bundle_dir)
    bundle.register_file(FILES_KEY, path, format=FORMAT)
    bundle.save()


def test_shipped_bundle_passes_and_says_what_it_could_not_run(cpp_binary: Path, tmp_path: Path) -> None:
    done, report = self_test(cpp_binary, DEFAULT_BUNDLE, tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["tool"] == "fundus-infer --self-test" and report["runtime"] == "c++" and report["pass"] is True
    opencv = report["results"]["opencv_fp32"]
    assert opencv["pass"] and opencv["model_file"] == "model.static.onnx"
    assert max(opencv["tile_max_abs_diff"], opencv["image_max_abs_diff"]) <= opencv["tolerance"]["max_abs"] == 1e-4
    assert opencv["mask_agreement"] >= 0.9999 and set(opencv["tiles_per_second"]) == {"1", "4", "8"}
    assert all(v > 0 for v in opencv["tiles_per_second"].values())
    assert "ONNX Runtime" in report["skipped"]["ort_fp32"]
    assert "TensorRT is not compiled" in report["skipped"]["trt_fp16"]  # this machine: no TensorRT, no CUDA
    assert report["errors"] == {} and report["inputs"]["drawn_tiles"] == 4 and report["inputs"]["plane_tiles"] == 4
    assert report["preprocess_vs_stored_plane"]["pixels"] == 320 * 320
    lines = done.stdout.splitlines()
    assert any(line.startswith("opencv_fp32") and line.endswith("ok") for line in lines) and lines[-1] == "PASS"
    # scale normalisation: the rule decides as the reference did; the resampled plane, run and brought back
    scaled = report["scaled"]
    assert scaled["image"] == "selftest/scaled.png" and scaled["decision_matches"] is True
    decision, reference = scaled["decision"], load_bundle(DEFAULT_BUNDLE).scale.reference_diameter
    assert decision["method"] == "fov" and decision["factor"] != 1.0
    assert decision["factor"] == pytest.approx(reference / decision["fov_diameter"], abs=1e-3)
    assert scaled["plane_pixels"] > 0
    assert opencv["scaled_image_max_abs_diff"] <= opencv["tolerance"]["max_abs"]
    assert opencv["scaled_mask_agreement"] >= 0.9999
    assert any(line.startswith("scale normalisation of selftest/scaled.png") for line in lines)


def test_scaled_reference_off_by_a_little_fails_with_exit_1(
    cpp_binary: Path, bundle_copy: Path, tmp_path: Path
) -> None:
    probability = bundle_copy / "selftest" / "scaled_probability.npy"
    np.save(probability, np.load(probability) + np.float32(1e-3))
    reregister(bundle_copy)
    done, report = self_test(cpp_binary, bundle_copy, tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    failures = report["results"]["opencv_fp32"]["failures"]  # only the scaled case is off (a few masks flip)
    assert failures[0].startswith("scaled: max|Δp| 0.001") and failures[0].endswith(" > 0.0001"), failures
    assert all(failure.startswith("scaled: ") for failure in failures), failures


def test_a_scale_decision_unlike_the_reference_fails(cpp_binary: Path, bundle_copy: Path, tmp_path: Path) -> None:
    reregister(bundle_copy, lambda ref: ref["scaled"]["decision"].update(method="image-size"))
    done, report = self_test(cpp_binary, bundle_copy, tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    assert report["scaled"]["decision_matches"] is False and "scale rule" in report["errors"]


def test_reference_off_by_a_little_fails_with_exit_1(cpp_binary: Path, bundle_copy: Path, tmp_path: Path) -> None:
    probability = bundle_copy / "selftest" / "probability.npy"
    np.save(probability, np.load(probability) + np.float32(1e-3))  # 10x the FP32 tolerance, no mask changes
    reregister(bundle_copy)
    done, report = self_test(cpp_binary, bundle_copy, tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    assert report["pass"] is False and report["results"]["opencv_fp32"]["pass"] is False
    assert report["results"]["opencv_fp32"]["failures"] == ["max|Δp| 0.001 > 0.0001"]
    assert done.stdout.splitlines()[-1] == "FAIL" and "FAIL: max|Δp| 0.001 > 0.0001" in done.stdout


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("tiles", "tiles.npy: sha256 does not match"),
        ("stale", "stale, made from a model.onnx"),
        ("absent", "lists no selftest_reference; write it with `fundus-export selftest-reference"),
        ("registered", "reference.json: sha256 does not match model.json"),
    ],
)
def test_changed_stale_or_absent_reference_is_refused(
    cpp_binary: Path, bundle_copy: Path, tmp_path: Path, damage: str, message: str
) -> None:
    folder = bundle_copy / "selftest"
    if damage == "tiles":
        data = bytearray((folder / "tiles.npy").read_bytes())
        data[-1] ^= 0x01
        (folder / "tiles.npy").write_bytes(bytes(data))
    elif damage == "stale":
        reregister(bundle_copy, lambda ref: ref.update(model_sha256="0" * 64))
    elif damage == "absent":
        bundle = load_bundle(bundle_copy)
        del bundle.meta["files"][FILES_KEY]
        bundle.save()
    else:
        (folder / "reference.json").write_text((folder / "reference.json").read_text().replace("320", "321", 1))
    done, report = self_test(cpp_binary, bundle_copy, tmp_path / "out")
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and report is None


def test_shipped_reference_is_what_the_writer_writes_today(bundle_copy: Path) -> None:
    shipped = DEFAULT_BUNDLE / "selftest"
    write_reference(bundle_copy, threads=1)
    written = bundle_copy / "selftest"
    assert np.array_equal(read_image(written / "fundus.png"), read_image(shipped / "fundus.png"))
    assert np.array_equal(np.load(written / "plane.npy"), np.load(shipped / "plane.npy"))
    assert np.array_equal(read_image(written / "scaled.png"), read_image(shipped / "scaled.png"))
    assert np.array_equal(np.load(written / "scaled_plane.npy"), np.load(shipped / "scaled_plane.npy"))
    for name in ("probability.npy", "tiles.npy", "scaled_probability.npy"):  # ONNX Runtime CPU FP32 here vs shipped
        np.testing.assert_allclose(np.load(written / name), np.load(shipped / name), rtol=0, atol=1e-6)
    reference = json.loads((written / "reference.json").read_text())
    assert reference["model_sha256"] == load_bundle(DEFAULT_BUNDLE).meta["files"]["fp32"]["sha256"]
    shipped_reference = json.loads((shipped / "reference.json").read_text())
    assert reference["tile_origins_xy"] == shipped_reference["tile_origins_xy"]
    assert reference["scaled"]["decision"] == shipped_reference["scaled"]["decision"]
