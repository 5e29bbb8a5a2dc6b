"""The C++ ``fundus-infer`` (cpp/, built with CMake) against the Python runtime it re-implements.

Builds ``build/fundus-infer`` (or uses ``FUNDUS_CPP_BINARY``). Where cmake or OpenCV's
development files are missing the tests skip with the reason, except under CI (``CI`` set), where
a failed build fails. Parity is measured on a bundle exported from the tiny random checkpoint:

- preprocessing (gray/green, CLAHE, normalise) and the automatic FOV are bit-exact;
- probabilities (OpenCV DNN in C++ vs ONNX Runtime / OpenCV DNN in Python) within 2/255;
- masks agree on >= 99.9 % of pixels, at a threshold in the middle of the probabilities
  (the random model's output is a narrow band around 0.39, so 0.5 would compare empty masks);
- with scale normalisation on (model.json ``scale``, ``--scale``), the same factor, method and FOV
  diameter in summary.json, and the same agreement on photographs of DRIVE, CHASE_DB1 and STARE
  through the shipped ``unet-drive`` given a 540 px reference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.bundle import load_bundle
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_image, write_image
from fundus_vessels.runtime.preprocess import PreprocessConfig, preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.runtime.tiling import make_grid, tiles_touching

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build"
PROB_TOLERANCE = 2 / 255
MASK_AGREEMENT = 0.999
# the scale section of the tests (DRIVE's FOV diameter as reference); the shipped default has none yet
SCALE = {"reference_diameter": 540.0, "tolerance": 0.05, "factor_range": [0.1, 1.5]}


def with_scale(bundle: Path, root: Path, scale: dict = SCALE) -> Path:
    """A copy of ``bundle`` at ``root`` whose model.json holds the ``scale`` section."""
    shutil.copytree(bundle, root, ignore=shutil.ignore_patterns("engines"))
    meta = json.loads((root / "model.json").read_text())
    meta["scale"] = scale
    (root / "model.json").write_text(json.dumps(meta, indent=2))
    return root


@pytest.fixture(scope="session")
def bundle_dir(tiny_bundle: Path) -> Path:
    return tiny_bundle


@pytest.fixture(scope="session")
def green_bundle_dir(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with ``"channel": "green"`` preprocessing."""
    root = tmp_path_factory.mktemp("cpp") / "green"
    shutil.copytree(bundle_dir, root)
    meta = json.loads((root / "model.json").read_text())
    meta["preprocess"]["channel"] = "green"
    (root / "model.json").write_text(json.dumps(meta, indent=2))
    return root


def run_cpp(binary: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=300)


def run_py(*args: str | Path) -> int:
    return cli.main([str(a) for a in args])


def synthetic_image(path: Path, height: int, width: int, seed: int = 0, kind: str = "rgb8") -> Path:
    """A synthetic photograph written as ``kind``: rgb8, rgb16, rgba8, gray8 or gray16."""
    rgb = make_synthetic_fundus(height, width, seed).image_rgb
    if kind == "rgb16":
        image = rgb.astype(np.uint16) * 257 + np.random.default_rng(seed).integers(0, 200, rgb.shape, dtype=np.uint16)
    elif kind == "rgba8":
        alpha = np.random.default_rng(seed).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
        image = np.dstack([rgb, alpha])
    elif kind == "gray8":
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif kind == "gray16":
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    else:
        image = rgb
    if image.ndim == 3 and image.shape[2] == 4:
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
    else:
        write_image(path, image)
    return path


def python_probability(bundle: Path, image: Path, backend: str, scale: str | float = "auto") -> np.ndarray:
    from fundus_vessels.runtime.pipeline import Segmenter

    return Segmenter(bundle, backend=backend, scale=scale).segment(read_image(image), "auto").probability


def compare_outputs(cpp_out: Path, py_out: Path, stem: str) -> dict[str, float]:
    """Mask agreement and probability difference between the two runtimes' PNGs."""
    read = lambda folder, kind: cv2.imread(str(folder / f"{stem}_{kind}.png"), cv2.IMREAD_UNCHANGED)  # noqa: E731
    mask_c, mask_p = read(cpp_out, "mask"), read(py_out, "mask")
    prob_c, prob_p = read(cpp_out, "prob").astype(int), read(py_out, "prob").astype(int)
    assert mask_c.shape == mask_p.shape == prob_c.shape
    assert set(np.unique(mask_c)) <= {0, 255}
    overlay_c, overlay_p = read(cpp_out, "overlay"), read(py_out, "overlay")
    return {
        "mask_agreement": float((mask_c == mask_p).mean()),
        "mask_fraction": float((mask_p > 0).mean()),
        "prob_max_diff": int(np.abs(prob_c - prob_p).max()),
        "overlay_agreement": float((overlay_c == overlay_p).all(axis=2).mean()),
    }


def assert_parity(binary: Path, bundle: Path, image: Path, tmp: Path, backend: str = "ort", extra=()) -> dict:
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    scale = given.get("--scale", "auto")
    reference = python_probability(bundle, image, backend, scale if scale in ("auto", "none") else float(scale))
    inside = fov_from_image(read_image(image))
    threshold = f"{float(np.median(reference[inside])):.7f}"  # half the FOV is vessel: masks are not empty
    cpp_out, py_out, dump = tmp / "cpp", tmp / f"py_{backend}", tmp / "dump"
    common = ["--model", bundle, "--threshold", threshold, "--quiet", *extra]
    result = run_cpp(binary, image, "-o", cpp_out, *common, "--debug-dump", dump)
    assert result.returncode == 0, result.stderr
    assert run_py(image, "-o", py_out, "--backend", backend, *common) == 0
    stats = compare_outputs(cpp_out, py_out, image.stem)
    assert stats["mask_agreement"] >= MASK_AGREEMENT, stats
    assert 0.02 < stats["mask_fraction"] < 0.98, stats  # the comparison is not of empty masks
    assert stats["prob_max_diff"] <= 2, stats
    assert stats["overlay_agreement"] >= MASK_AGREEMENT, stats
    # float probabilities, before quantisation
    cpp_prob = np.load(dump / f"{image.stem}_prob.npy")
    stats["prob_float_max_diff"] = float(np.abs(cpp_prob - reference).max())
    assert stats["prob_float_max_diff"] <= PROB_TOLERANCE, stats
    # summaries agree on the measurements
    cpp_summary = json.loads((cpp_out / "summary.json").read_text())
    py_summary = json.loads((py_out / "summary.json").read_text())
    (cpp_entry,), (py_entry,) = cpp_summary["images"], py_summary["images"]
    assert set(py_entry) == set(cpp_entry)
    for key in ("file", "width", "height", "channels", "bit_depth", "scale", "outputs"):
        assert cpp_entry[key] == py_entry[key], key
    if "quality" in py_entry:
        assert cpp_entry["quality"]["measures"]["scale_in_domain"] == py_entry["quality"]["measures"]["scale_in_domain"]
        assert ("out of domain" in " ".join(cpp_entry["quality"]["reasons"])) == (not py_entry["scale"]["in_domain"])
    assert abs(cpp_entry["vessel_fraction"] - py_entry["vessel_fraction"]) <= 1 - MASK_AGREEMENT
    print(f"parity {image.name} ({backend}): {stats}")
    return stats


@pytest.fixture(scope="session")
def built(cpp_binary: Path, bundle_dir: Path) -> tuple[Path, Path]:
    return cpp_binary, bundle_dir


# -- preprocessing and FOV: bit-exact ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["rgb8", "rgb16", "rgba8", "gray8", "gray16"])
def test_preprocess_and_fov_are_bit_exact(built, tmp_path: Path, kind: str) -> None:
    binary, bundle = built
    image = synthetic_image(tmp_path / f"photo_{kind}.png", 300, 340, seed=3, kind=kind)
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", bundle, "--debug-dump", tmp_path / "dump")
    assert result.returncode == 0, result.stderr
    photo = read_image(image)
    expected = preprocess(photo, PreprocessConfig())
    np.testing.assert_array_equal(np.load(tmp_path / "dump" / f"{image.stem}_input.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "dump" / f"{image.stem}_fov.npy") > 0, fov_from_image(photo))
    entry = json.loads((tmp_path / "out" / "summary.json").read_text())["images"][0]
    assert entry["bit_depth"] == (16 if kind.endswith("16") else 8)
    assert entry["channels"] == {"gray": 1, "rgb": 3, "rgba": 4}[kind.rstrip("0123456789")]  # as stored in the file


@pytest.mark.parametrize("kind", ["rgb8", "rgb16", "gray8"])
def test_fov_of_a_large_photograph_is_bit_exact(built, tmp_path: Path, kind: str) -> None:
    """Above FOV_WORK_SIDE px both runtimes find the FOV on the same shrunk copy and enlarge it alike."""
    binary, bundle = built
    image = synthetic_image(tmp_path / f"large_{kind}.png", 1300, 1460, seed=5, kind=kind)
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", bundle, "--debug-dump", tmp_path / "dump")
    assert result.returncode == 0, result.stderr
    expected = fov_from_image(read_image(image))
    assert expected.shape == (1300, 1460) and 0.4 < expected.mean() < 0.9
    np.testing.assert_array_equal(np.load(tmp_path / "dump" / f"{image.stem}_fov.npy") > 0, expected)


def test_green_channel_preprocessing_is_bit_exact(cpp_binary: Path, green_bundle_dir: Path, tmp_path: Path) -> None:
    image = synthetic_image(tmp_path / "photo.png", 260, 270, seed=4)
    result = run_cpp(cpp_binary, image, "-o", tmp_path / "out", "--model", green_bundle_dir, "--debug-dump", tmp_path)
    assert result.returncode == 0, result.stderr
    expected = preprocess(read_image(image), PreprocessConfig(channel="green"))
    np.testing.assert_array_equal(np.load(tmp_path / "photo_input.npy"), expected)


# -- probabilities and masks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "kind"),
    [(584, 565, "rgb8"), (300, 420, "rgb16"), (200, 180, "rgba8"), (120, 300, "gray8"), (256, 256, "rgb8")],
)
def test_parity_with_python_runtime(built, tmp_path: Path, height: int, width: int, kind: str) -> None:
    """Includes images smaller than a tile (reflect / symmetric padding) and exactly one tile."""
    binary, bundle = built
    image = synthetic_image(tmp_path / f"synthetic_{kind}.png", height, width, seed=height + width, kind=kind)
    assert_parity(binary, bundle, image, tmp_path)


def test_tiles_outside_the_fov_are_skipped_alike(built, tmp_path: Path) -> None:
    """A photograph with wide dark side bands (like 3504x2336 ones): both runtimes skip the same tiles."""
    binary, bundle = built
    rgb = np.zeros((300, 900, 3), np.uint8)
    rgb[:, 300:600] = make_synthetic_fundus(300, 300, seed=9).image_rgb
    image = tmp_path / "banded.png"
    write_image(image, rgb)
    assert_parity(binary, bundle, image, tmp_path)
    tiling = load_bundle(bundle)
    grid = make_grid(rgb.shape, tiling.tile, tiling.overlap)
    run = tiles_touching(grid, fov_from_image(rgb))
    covered = np.zeros(rgb.shape[:2], bool)  # pixels of the tiles run
    for y, x in run:
        covered[y : y + grid.tile, x : x + grid.tile] = True
    assert 0 < len(run) < len(grid) and not covered.all()
    for folder in ("cpp", "py_ort"):
        prob = cv2.imread(str(tmp_path / folder / "banded_prob.png"), cv2.IMREAD_UNCHANGED)
        assert not prob[~covered].any() and prob[covered].any(), folder  # the other tiles were not run


def test_parity_with_python_opencv_backend(built, tmp_path: Path) -> None:
    binary, bundle = built
    image = synthetic_image(tmp_path / "synthetic.png", 400, 500, seed=7)
    stats = assert_parity(binary, bundle, image, tmp_path, backend="opencv")
    assert stats["prob_float_max_diff"] < 1e-4, stats  # same model file, same library family


@pytest.fixture(scope="session")
def whole_bundle_dir(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with model.dynamic.onnx and whole-image passes up to 448 px (model.json tiling.whole_image)."""
    from fundus_vessels.export.onnx_export import write_dynamic_variant

    root = Path(shutil.copytree(bundle_dir, tmp_path_factory.mktemp("cpp") / "whole"))
    write_dynamic_variant(load_bundle(root), 448)
    return root


@pytest.mark.parametrize(("height", "width"), [(300, 420), (200, 180), (440, 433), (584, 565)])
@pytest.mark.parametrize("backend", ["ort", "opencv"])
def test_parity_with_whole_image_passes(
    cpp_binary: Path, whole_bundle_dir: Path, tmp_path: Path, height: int, width: int, backend: str
) -> None:
    """Both runtimes run planes up to 448 px (padded to 16) in one pass and larger ones as tiles, alike."""
    image = synthetic_image(tmp_path / "whole.png", height, width, seed=height)
    assert_parity(cpp_binary, whole_bundle_dir, image, tmp_path, backend=backend)


@pytest.fixture(scope="session")
def scaled_bundle_dir(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with the test scale section."""
    return with_scale(bundle_dir, tmp_path_factory.mktemp("cpp") / "scaled")


@pytest.mark.parametrize(
    ("height", "width", "scale", "method"),
    [
        (800, 780, "auto", "fov"),  # FOV ~730 px: shrunk by ~0.74 (INTER_AREA)
        (360, 340, "auto", "fov"),  # FOV ~320 px: enlarged by ~1.7, out of the model's range (INTER_LINEAR)
        (584, 565, "auto", "fov"),  # DRIVE's size: within the tolerance, snapped to 1
        (500, 480, "0.6", "fixed"),
        (300, 320, "1.3", "fixed"),
        (500, 480, "none", "none"),
    ],
)
def test_parity_with_scaling(
    cpp_binary: Path, scaled_bundle_dir: Path, tmp_path: Path, height: int, width: int, scale: str, method: str
) -> None:
    """Both runtimes decide the same factor, resample alike and return outputs at the input's size."""
    image = synthetic_image(tmp_path / "scaled.png", height, width, seed=height + width)
    stats = assert_parity(cpp_binary, scaled_bundle_dir, image, tmp_path, extra=("--scale", scale))
    entry = json.loads((tmp_path / "cpp" / "summary.json").read_text())["images"][0]
    assert entry["scale"]["method"] == method, entry["scale"]
    print(f"scaled parity {height}x{width} --scale {scale}: {entry['scale']} {stats}")


def test_parity_with_scaling_when_no_fov_is_found(cpp_binary: Path, scaled_bundle_dir: Path, tmp_path: Path) -> None:
    """A frame filled edge to edge: the image-size fallback, out of domain, graded at best usable alike."""
    crop = make_synthetic_fundus(700, 700, seed=6).image_rgb[150:550, 120:580]
    image = tmp_path / "crop.png"
    write_image(image, crop)
    assert_parity(cpp_binary, scaled_bundle_dir, image, tmp_path)
    for folder in ("cpp", "py_ort"):
        entry = json.loads((tmp_path / folder / "summary.json").read_text())["images"][0]
        assert entry["scale"]["method"] == "image-size" and entry["scale"]["fov_diameter"] == 460.0, folder
        assert entry["scale"]["note"] == "FOV not found: scaled by image size" and not entry["scale"]["in_domain"]
        assert entry["quality"]["verdict"] != "good", folder


# photographs of the three cameras, through the shipped unet-drive given a 540 px reference
SCALED_PHOTOGRAPHS = {
    "DRIVE": "DRIVE/test/images/01_test.tif",  # FOV ~540 px: snapped to 1
    "CHASE_DB1": "CHASEDB1/Image_07L.jpg",  # 999x960, FOV ~900 px: shrunk by ~0.6
    "STARE": "STARE/images/im0077.png",  # 700x605, FOV ~650 px: shrunk by ~0.83
}


@pytest.fixture(scope="session")
def drive_model_scaled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_scale(REPO / "models" / "unet-drive", tmp_path_factory.mktemp("cpp") / "unet-drive-scaled")


def model_parity(binary: Path, bundle: Path, image: Path, tmp: Path, extra=()) -> dict:
    """The model's own threshold: masks of both runtimes (C++ OpenCV DNN, Python ONNX Runtime) compared."""
    common = [image, "--model", bundle, "--quiet", "--save", "mask", *extra]
    result = run_cpp(binary, *common, "-o", tmp / "cpp")
    assert result.returncode == 0, result.stderr
    assert run_py(*common, "-o", tmp / "py") == 0
    mask_c = cv2.imread(str(tmp / "cpp" / f"{image.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    mask_p = cv2.imread(str(tmp / "py" / f"{image.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask_c.shape == mask_p.shape == read_image(image).shape[:2]
    (cpp_entry,) = json.loads((tmp / "cpp" / "summary.json").read_text())["images"]
    (py_entry,) = json.loads((tmp / "py" / "summary.json").read_text())["images"]
    assert cpp_entry["scale"] == py_entry["scale"]
    assert cpp_entry["quality"]["verdict"] == py_entry["quality"]["verdict"]
    return {
        "mask_agreement": float((mask_c == mask_p).mean()),
        "vessel_fraction": py_entry["vessel_fraction"],
        "scale": py_entry["scale"],
    }


@pytest.mark.data
@pytest.mark.parametrize("dataset", list(SCALED_PHOTOGRAPHS))
def test_parity_with_scaling_on_photographs(
    cpp_binary: Path, drive_model_scaled: Path, data_root: Path, tmp_path: Path, dataset: str
) -> None:
    image = data_root / SCALED_PHOTOGRAPHS[dataset]
    if not image.is_file():
        pytest.skip(f"{image} not found")
    stats = model_parity(cpp_binary, drive_model_scaled, image, tmp_path)
    print(f"{dataset} {image.name} scaled parity: {stats}")
    assert stats["mask_agreement"] >= MASK_AGREEMENT, stats
    assert 0.03 < stats["vessel_fraction"] < 0.3, stats  # a real vessel map, not an empty one
    assert stats["scale"]["method"] == "fov" and stats["scale"]["in_domain"], stats
    if dataset == "DRIVE":  # DRIVE is the reference: snapped; enlarged on request, bilinearly
        assert stats["scale"]["factor"] == 1.0
        enlarged = model_parity(cpp_binary, drive_model_scaled, image, tmp_path / "x1.3", ("--scale", "1.3"))
        print(f"{dataset} {image.name} --scale 1.3 parity: {enlarged}")
        assert enlarged["mask_agreement"] >= MASK_AGREEMENT, enlarged
    else:
        assert stats["scale"]["factor"] < 0.9, stats


@pytest.mark.data
def test_parity_on_drive(built, data_root: Path, tmp_path: Path) -> None:
    binary, bundle = built
    image = data_root / "DRIVE" / "test" / "images" / "01_test.tif"
    stats = assert_parity(binary, bundle, image, tmp_path)
    # the official FOV mask as --fov (a GIF: the C++ binary reads it with its own decoder)
    mask = data_root / "DRIVE" / "test" / "mask" / "01_test_mask.gif"
    stats_fov = assert_parity(binary, bundle, image, tmp_path / "fov", extra=("--fov", mask))
    print(f"DRIVE 01_test parity: auto FOV {stats}; official FOV {stats_fov}")


@pytest.mark.data
def test_default_bundle_parity_on_drive(cpp_binary: Path, data_root: Path, tmp_path: Path) -> None:
    """The shipped default runs DRIVE photographs in one whole-image pass: both runtimes, the same masks."""
    bundle = REPO / "models" / "unet-multicamera"
    assert load_bundle(bundle).whole_image >= 608  # a DRIVE plane (584x565) padded to 592x576 fits
    stats = model_parity(cpp_binary, bundle, data_root / "DRIVE" / "test" / "images" / "01_test.tif", tmp_path)
    assert stats["mask_agreement"] >= MASK_AGREEMENT, stats


# -- bad inputs and bundles --------------------------------------------------------------------


def test_bad_inputs_fail_by_name_and_batch_continues(built, tmp_path: Path) -> None:
    binary, bundle = built
    good = synthetic_image(tmp_path / "good.png", 200, 220, seed=1)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    missing = tmp_path / "missing.png"
    result = run_cpp(binary, empty, text, good, missing, "-o", tmp_path / "out", "--model", bundle)
    assert result.returncode == 1, result.stderr
    for path, why in ((empty, "file is empty"), (text, "not a readable image"), (missing, "no such file")):
        assert f"{path}: {why}" in result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["file"] for e in summary["images"]] == [str(good)]
    assert {f["file"] for f in summary["failures"]} == {str(empty), str(text), str(missing)}
    assert summary["succeeded"] == 1 and summary["failed"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "good_mask.png",
        "good_overlay.png",
        "good_prob.png",
        "results.csv",
        "summary.json",
    ]  # nothing half-written, no temporary files left


def test_folder_inputs_and_empty_folder(built, tmp_path: Path) -> None:
    binary, bundle = built
    folder = tmp_path / "images"
    folder.mkdir()
    synthetic_image(folder / "b.png", 150, 160, seed=2)
    synthetic_image(folder / "a.tif", 150, 160, seed=3)
    (folder / "readme.txt").write_text("skip me")
    (tmp_path / "nothing").mkdir()
    result = run_cpp(binary, folder, tmp_path / "nothing", "-o", tmp_path / "out", "--model", bundle, "--save", "mask")
    assert result.returncode == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [Path(e["file"]).name for e in summary["images"]] == ["a.tif", "b.png"]
    assert summary["failures"] == [{"file": str(tmp_path / "nothing"), "error": "folder holds no images"}]


def test_missing_bundle_or_model_json(cpp_binary: Path, tmp_path: Path) -> None:
    binary = cpp_binary
    image = synthetic_image(tmp_path / "x.png", 100, 100)
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", tmp_path / "nowhere")
    assert result.returncode == 2 and "nowhere" in result.stderr
    empty = tmp_path / "empty_bundle"
    empty.mkdir()
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", empty)
    assert result.returncode == 2 and "model.json missing" in result.stderr


def test_sha_mismatch_and_missing_model_file(built, tmp_path: Path) -> None:
    binary, bundle = built
    image = synthetic_image(tmp_path / "x.png", 100, 100)
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    with open(broken / "model.static.onnx", "ab") as f:
        f.write(b"\0")
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", broken)
    assert result.returncode == 2
    assert "model.static.onnx: sha256 does not match model.json" in result.stderr
    (broken / "model.static.onnx").unlink()
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", broken)
    assert result.returncode == 2 and "model.static.onnx: listed in model.json but missing" in result.stderr
    (broken / "model.json").write_text("{ not json")
    result = run_cpp(binary, image, "-o", tmp_path / "out", "--model", broken)
    assert result.returncode == 2 and "model.json" in result.stderr


def test_sha256_matches_python(built) -> None:
    """The C++ SHA-256 accepted the bundle above; here a wrong hash of the right length is refused."""
    from fundus_vessels.runtime.bundle import sha256_file

    _, bundle = built
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["files"]["fp32_static"]["sha256"] == sha256_file(bundle / "model.static.onnx")


def test_usage_errors_exit_2(built, tmp_path: Path) -> None:
    binary, bundle = built
    image = synthetic_image(tmp_path / "x.png", 100, 100)
    out = tmp_path / "out"
    cases = [
        ([image], "-o OUTDIR is required"),
        (["-o", out], "no INPUT"),
        ([image, "-o", out, "--backend", "ort"], "--backend"),
        ([image, "-o", out, "--threshold", "2"], "--threshold"),
        ([image, "-o", out, "--save", "mask,foo"], "--save"),
        ([image, "-o", out, "--model", bundle, "--precision", "fp16"], "fp32 only"),
        ([image, "-o", out, "--model", bundle, "--fov", tmp_path / "no_mask.png"], "--fov"),
        ([image, "-o", out, "--model", bundle, "--backend", "trt"], "trt"),
        ([image, "-o", out, "--scale", "big"], "--scale must be auto, none or a positive number, got 'big'"),
        ([image, "-o", out, "--scale", "9"], "--scale factor must be in [0.01, 4], got '9'"),
    ]
    for args, message in cases:
        result = run_cpp(binary, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    help_text = run_cpp(binary, "--help")
    assert help_text.returncode == 0 and "--backend" in help_text.stdout and "exit status:" in help_text.stdout
