"""``fundus-infer`` end to end: outputs, summary.json, demo, bad inputs and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from runtime_fixtures import small_fundus, write_synthetic_images

from fundus_vessels.runtime.cli import main
from fundus_vessels.runtime.imageio import read_image, write_image

REPO = Path(__file__).resolve().parent.parent


def run(bundle: Path, out: Path, *args: str) -> tuple[int, dict | None]:
    code = main([*args, "-o", str(out), "--model", str(bundle), "--quiet"])
    summary = out / "summary.json"
    return code, json.loads(summary.read_text()) if summary.exists() else None


def test_three_images_end_to_end(tiny_bundle: Path, tmp_path: Path) -> None:
    inputs = write_synthetic_images(tmp_path / "in")
    code, summary = run(tiny_bundle, tmp_path / "out", str(tmp_path / "in"))
    assert code == 0
    assert summary["succeeded"] == 3 and summary["failures"] == []
    assert summary["bundle"]["name"] == "tiny-test" and len(summary["bundle"]["model_sha256"]) == 64
    for path, entry in zip(inputs, summary["images"], strict=True):
        image = read_image(path)
        assert entry["file"] == str(path) and (entry["height"], entry["width"]) == image.shape[:2]
        # auto on a CPU, FP32: OpenCV DNN (runtime/backends resolve_backend)
        assert entry["backend"] == "opencv" and entry["precision"] == "fp32" and entry["seconds"] > 0
        mask = read_image(tmp_path / "out" / f"{path.stem}_mask.png")
        prob = read_image(tmp_path / "out" / f"{path.stem}_prob.png")
        overlay = read_image(tmp_path / "out" / f"{path.stem}_overlay.png")
        assert mask.shape == prob.shape == image.shape[:2] and overlay.shape == image.shape
        assert set(np.unique(mask)) <= {0, 255}
        assert 0.0 <= entry["vessel_fraction"] <= 1.0


def test_outputs_follow_the_contract(tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """prob.png = round(p * 255) of the torch reference (±1 level), mask = p >= threshold in the FOV."""
    from fundus_vessels.runtime.pipeline import Segmenter

    image_path = write_synthetic_images(tmp_path / "in", count=1)[0]
    code, _ = run(tiny_bundle, tmp_path / "out", str(image_path), "--fov", "none", "--threshold", "0.3")
    assert code == 0
    reference = Segmenter(tiny_bundle, backend="torch", checkpoint=tiny_checkpoint).segment(read_image(image_path))
    prob = read_image(tmp_path / "out" / "fundus0_prob.png").astype(int)
    assert np.abs(prob - np.rint(reference.probability * 255)).max() <= 1
    mask = read_image(tmp_path / "out" / "fundus0_mask.png") > 0
    assert np.mean(mask != (reference.probability >= 0.3)) < 1e-3


def test_save_selects_outputs(tiny_bundle: Path, tmp_path: Path) -> None:
    image_path = write_synthetic_images(tmp_path / "in", count=1)[0]
    code, _summary = run(tiny_bundle, tmp_path / "out", str(image_path), "--save", "mask")
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fundus0_mask.png", "results.csv", "summary.json"]


def test_demo_reports_f1_against_the_drawn_tree(tiny_bundle: Path, tmp_path: Path) -> None:
    code, summary = run(tiny_bundle, tmp_path / "out", "--demo")
    assert code == 0
    assert (tmp_path / "out" / "demo_input.png").is_file() and (tmp_path / "out" / "demo_mask.png").is_file()
    assert 0.0 <= summary["demo"]["f1"] <= 1.0 and "miou" in summary["demo"]


def test_demo_prints_its_score(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--demo", "-o", str(tmp_path / "out"), "--model", str(tiny_bundle)])
    assert code == 0
    f1 = json.loads((tmp_path / "out" / "summary.json").read_text())["demo"]["f1"]
    assert f"demo score: F1 {f1:.3f}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kind",
    ["small", "gray16", "rgb16", "rgba", "gray", "gif", "tif", "bmp", "jpg"],
)
def test_unusual_but_valid_images_work(kind: str, tiny_bundle: Path, tmp_path: Path) -> None:
    photo = small_fundus(120, 100)
    folder = tmp_path / "in"
    folder.mkdir()
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    if kind == "gif":
        path = folder / "x.gif"
        Image.fromarray(photo).convert("P").save(path)
    else:
        suffix = {"tif": ".tif", "bmp": ".bmp", "jpg": ".jpg"}.get(kind, ".png")
        image = {
            "small": photo[:9, :13],
            "gray16": gray.astype(np.uint16) * 257,
            "rgb16": photo.astype(np.uint16) * 257,
            "rgba": np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]),
            "gray": gray,
        }.get(kind, photo)
        path = folder / f"x{suffix}"
        if image.ndim == 3 and image.shape[2] == 4:
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
        else:
            write_image(path, image)
    code, summary = run(tiny_bundle, tmp_path / "out", str(path))
    assert code == 0, summary["failures"]
    mask = read_image(tmp_path / "out" / "x_mask.png")
    assert mask.shape == read_image(path).shape[:2]


def _bad_input(kind: str, folder: Path) -> Path:
    """A file (or folder) that cannot be segmented."""
    if kind == "missing":
        return folder / "missing.png"
    if kind == "empty_folder":
        (folder / "empty").mkdir()
        return folder / "empty"
    path = folder / {"empty": "empty.png", "text": "notes.png", "truncated": "cut.png", "binary": "data.tif"}[kind]
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "truncated":
        _ok, encoded = cv2.imencode(".png", small_fundus(120, 100))
        path.write_bytes(encoded.tobytes()[:400])
    elif kind == "binary":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    else:
        path.touch()
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "binary", "empty_folder"])
def test_bad_input_is_named_and_the_batch_continues(
    kind: str, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = write_synthetic_images(tmp_path / "in", count=2)
    bad = _bad_input(kind, tmp_path)
    code, summary = run(tiny_bundle, tmp_path / "out", str(good[0]), str(bad), str(good[1]))
    assert code == 1
    assert [e["file"] for e in summary["images"]] == [str(good[0]), str(good[1])]
    assert [f["file"] for f in summary["failures"]] == [str(bad)]
    assert str(bad) in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.tmp")), "no half-written files"


def test_earlier_outputs_survive_a_failing_run(tiny_bundle: Path, tmp_path: Path) -> None:
    good = write_synthetic_images(tmp_path / "in", count=1)[0]
    out = tmp_path / "out"
    assert run(tiny_bundle, out, str(good))[0] == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert run(tiny_bundle, out, str(_bad_input("truncated", tmp_path)))[0] == 1
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before


def test_same_stem_twice_fails_the_second(tiny_bundle: Path, tmp_path: Path) -> None:
    first = write_synthetic_images(tmp_path / "a", count=1)[0]
    second = write_synthetic_images(tmp_path / "b", count=1)[0]
    code, summary = run(tiny_bundle, tmp_path / "out", str(first), str(second))
    assert code == 1 and summary["failures"][0]["file"] == str(second)
    assert "already used" in summary["failures"][0]["error"]


def _corrupt_sha(bundle: Path) -> None:
    for model in bundle.glob("*.onnx"):  # whichever file the run loads
        with open(model, "ab") as f:
            f.write(b"\0")


def _three_channels(bundle: Path) -> None:
    meta = json.loads((bundle / "model.json").read_text())
    meta["input"]["channels"] = 3
    (bundle / "model.json").write_text(json.dumps(meta))


def _no_model_json(bundle: Path) -> None:
    (bundle / "model.json").unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_corrupt_sha, "sha256"), (_three_channels, "input.channels must be 1"), (_no_model_json, "not a model bundle")],
)
def test_bad_bundle_exits_2(damage, message: str, tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    damage(bundle)
    image = write_synthetic_images(tmp_path / "in", count=1)[0]
    code, summary = run(bundle, tmp_path / "out", str(image))
    assert code == 2 and summary is None
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        [],  # no input
        ["IMAGE", "--save", "mask,heatmap"],
        ["IMAGE", "--backend", "tensorflow"],
        ["IMAGE", "--threshold", "1.5"],
        ["IMAGE", "--batch", "0"],
        ["IMAGE", "--fov", "no_such_mask.png"],
        ["IMAGE", "--backend", "torch"],  # no checkpoint
    ],
)
def test_usage_errors_exit_2(args: list[str], tiny_bundle: Path, tmp_path: Path) -> None:
    image = write_synthetic_images(tmp_path / "in", count=1)[0]
    args = [str(image) if a == "IMAGE" else a for a in args]
    assert run(tiny_bundle, tmp_path / "out", *args)[0] == 2


def test_unwritable_output_folder_exits_2(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    image = write_synthetic_images(tmp_path / "in", count=1)[0]
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main([str(image), "-o", str(blocker / "out"), "--model", str(tiny_bundle), "--quiet"])
    assert code == 2
    assert "output folder not writable" in capsys.readouterr().err


def test_fov_mask_file_is_applied(tiny_bundle: Path, tmp_path: Path) -> None:
    image = write_synthetic_images(tmp_path / "in", count=1)[0]
    fov = np.zeros(read_image(image).shape[:2], np.uint8)
    fov[50:100, 60:120] = 255
    write_image(tmp_path / "fov.png", fov)
    code, _ = run(tiny_bundle, tmp_path / "out", str(image), "--fov", str(tmp_path / "fov.png"), "--threshold", "0")
    assert code == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "fundus0_mask.png"), fov)


def test_console_script_runs_without_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    image = write_synthetic_images(tmp_path / "in", count=1)[0]
    code = (
        "import sys; from fundus_vessels.runtime.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    argv = [str(image), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle), "--quiet"]
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.data
def test_drive_test_image(data_root: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    test = data_root / "DRIVE" / "test"
    image = test / "images" / "01_test.tif"
    code, summary = run(tiny_bundle, tmp_path / "out", str(image), "--fov", str(test / "mask" / "01_test_mask.gif"))
    assert code == 0
    assert read_image(tmp_path / "out" / "01_test_mask.png").shape == (584, 565)
    assert summary["images"][0]["width"] == 565
