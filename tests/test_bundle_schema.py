"""model.json as one typed contract: writers and loader agree, and every broken value is refused by name.

The same table of broken ``model.json`` files goes through ``load_bundle``, Python ``fundus-infer``
and the C++ ``fundus-infer``: each exits 2 before any image with the same message, which names
model.json and the dotted key.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.bundle import BundleError, load_bundle
from fundus_vessels.runtime.bundle_schema import BundleSpec
from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            meta = meta[key]
        meta[leaf] = value

    return edit


def _drop(path: str) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            meta = meta[key]
        del meta[leaf]

    return edit


def _both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        for one in edits:
            one(meta)

    return edit


TILE_RULE = "an integer >= 32, <= 2048 and a multiple of 32"
THRESHOLD_RULE = "a finite number in (0, 1)"
SCALE = {"reference_diameter": 540.0, "tolerance": 0.05, "factor_range": [0.1, 1.5]}
REFERENCE_RULE = "a finite number in [0, 4096] (pixels; 0: no scale normalisation)"
RANGE_RULE = "[low, high] with 0.01 <= low <= 1 <= high <= 4"


def _scale(**changes: object) -> Callable[[dict], None]:
    """model.json gains a ``scale`` section: the test one with ``changes`` (a value None drops the key)."""
    section = {**SCALE, **changes}
    return _set("scale", {k: v for k, v in section.items() if v is not None})


# (edit of model.json, the message after "<bundle>/model.json: ")
BROKEN = {
    "no tiling.tile": (_drop("tiling.tile"), f"tiling.tile missing (must be {TILE_RULE})"),
    "tile 'x'": (_set("tiling.tile", "x"), f"tiling.tile must be {TILE_RULE} (got 'x')"),
    "tile 100": (_set("tiling.tile", 100), f"tiling.tile must be {TILE_RULE} (got 100)"),
    "tile 256.0": (_set("tiling.tile", 256.0), f"tiling.tile must be {TILE_RULE} (got 256.0)"),
    "overlap >= tile": (
        _set("tiling.overlap", 256),
        "tiling.overlap must be an integer with 0 <= overlap < tiling.tile (256) (got 256)",
    ),
    "unknown tiling key": (
        _set("tiling.stride", 8),
        "tiling.stride is not a known key (known: tile, overlap, whole_image)",
    ),
    "whole_image -1": (
        _set("tiling.whole_image", -1),
        "tiling.whole_image must be an integer with 0 <= whole_image <= 2048 (0: always tiles) (got -1)",
    ),
    "whole_image 'big'": (
        _set("tiling.whole_image", "big"),
        "tiling.whole_image must be an integer with 0 <= whole_image <= 2048 (0: always tiles) (got 'big')",
    ),
    "threshold 'half'": (_set("threshold", "half"), f"threshold must be {THRESHOLD_RULE} (got 'half')"),
    "threshold 1.5": (_set("threshold", 1.5), f"threshold must be {THRESHOLD_RULE} (got 1.5)"),
    "threshold 'NaN'": (_set("threshold", "NaN"), f"threshold must be {THRESHOLD_RULE} (got 'NaN')"),
    "threshold 0": (_set("threshold", 0), f"threshold must be {THRESHOLD_RULE} (got 0)"),
    "no threshold": (_drop("threshold"), f"threshold missing (must be {THRESHOLD_RULE})"),
    "wrong format": (_set("format", "fundus-bundle/2"), "format must be 'fundus-bundle/1' (got 'fundus-bundle/2')"),
    "no format": (_drop("format"), "format missing (must be 'fundus-bundle/1')"),
    "vessel_index 2": (
        _set("output.vessel_index", 2),
        "output.vessel_index must be an integer index into output.classes (0 to 1) (got 2)",
    ),
    "one class": (
        _set("output.classes", ["vessel"]),
        "output.classes must be a list of at least 2 class names (got a list)",
    ),
    "channel 'blue'": (_set("preprocess.channel", "blue"), "preprocess.channel must be 'gray' or 'green' (got 'blue')"),
    "clahe_grid 0": (_set("preprocess.clahe_grid", 0), "preprocess.clahe_grid must be an integer in [1, 64] (got 0)"),
    "clahe_grid 100000": (
        _set("preprocess.clahe_grid", 100000),
        "preprocess.clahe_grid must be an integer in [1, 64] (got 100000)",
    ),
    "tile 32768": (_set("tiling.tile", 32768), f"tiling.tile must be {TILE_RULE} (got 32768)"),
    "std 'one'": (_set("preprocess.std", "one"), "preprocess.std must be a finite number > 0 (got 'one')"),
    "no preprocess.mean": (_drop("preprocess.mean"), "preprocess.mean missing (must be a finite number)"),
    "unknown preprocess key": (
        _set("preprocess.gamma", 1.2),
        "preprocess.gamma is not a known key (known: channel, clahe_clip, clahe_grid, mean, std)",
    ),
    "3 input channels": (_set("input.channels", 3), "input.channels must be 1 (one input plane) (got 3)"),
    "tiling a list": (_set("tiling", [256, 64]), "tiling must be an object (got a list)"),
    "bad sha256": (_set("files.fp32.sha256", "abc"), "files.fp32.sha256 must be 64 lower-case hex digits (got 'abc')"),
    "path outside": (
        _set("files.fp32_static.path", "../model.onnx"),
        "files.fp32_static.path must be a relative path inside the bundle (got '../model.onnx')",
    ),
    "no bytes": (_drop("files.fp32.bytes"), "files.fp32.bytes missing (must be an integer >= 0)"),
    # the optional scale section (runtime/scale.py), checked after tiling and before output
    "scale a string": (_set("scale", "x"), "scale must be an object (got 'x')"),
    "scale a list": (_set("scale", [540]), "scale must be an object (got a list)"),
    "reference -1": (_scale(reference_diameter=-1), f"scale.reference_diameter must be {REFERENCE_RULE} (got -1)"),
    "reference 5000.5": (
        _scale(reference_diameter=5000.5),
        f"scale.reference_diameter must be {REFERENCE_RULE} (got 5000.5)",
    ),
    "reference 'big'": (
        _scale(reference_diameter="big"),
        f"scale.reference_diameter must be {REFERENCE_RULE} (got 'big')",
    ),
    "no reference": (_scale(reference_diameter=None), f"scale.reference_diameter missing (must be {REFERENCE_RULE})"),
    "tolerance 0.5": (_scale(tolerance=0.5), "scale.tolerance must be a finite number in [0, 0.5) (got 0.5)"),
    "no tolerance": (_scale(tolerance=None), "scale.tolerance missing (must be a finite number in [0, 0.5))"),
    "factor_range [1.2, 2]": (_scale(factor_range=[1.2, 2]), f"scale.factor_range must be {RANGE_RULE} (got a list)"),
    "factor_range [0.5, 5]": (_scale(factor_range=[0.5, 5]), f"scale.factor_range must be {RANGE_RULE} (got a list)"),
    "factor_range [0.001, 1]": (
        _scale(factor_range=[0.001, 1]),
        f"scale.factor_range must be {RANGE_RULE} (got a list)",
    ),
    "factor_range one value": (_scale(factor_range=[0.5]), f"scale.factor_range must be {RANGE_RULE} (got a list)"),
    "factor_range ['a', 2]": (_scale(factor_range=["a", 2]), f"scale.factor_range must be {RANGE_RULE} (got a list)"),
    "factor_range 'wide'": (_scale(factor_range="wide"), f"scale.factor_range must be {RANGE_RULE} (got 'wide')"),
    "no factor_range": (_scale(factor_range=None), f"scale.factor_range missing (must be {RANGE_RULE})"),
    "unknown scale key": (
        _scale(method="fov"),
        "scale.method is not a known key (known: reference_diameter, tolerance, factor_range)",
    ),
    "scale after tiling": (
        _both(_scale(tolerance=0.7), _set("tiling.tile", 100)),
        f"tiling.tile must be {TILE_RULE} (got 100)",
    ),
    "scale before output": (
        _both(_scale(tolerance=0.7), _set("output.vessel_index", 2)),
        "scale.tolerance must be a finite number in [0, 0.5) (got 0.7)",
    ),
}


def broken_bundle(tiny_bundle: Path, folder: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the tiny bundle whose model.json had ``edit`` applied (written as JSON, no NaN)."""
    root = Path(shutil.copytree(tiny_bundle, folder))
    meta = json.loads((root / "model.json").read_text())
    edit(meta)
    (root / "model.json").write_text(json.dumps(meta, indent=2, allow_nan=False))
    return root


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "eye.png"
    write_image(path, make_synthetic_fundus(128, 128).image_rgb)
    return path


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_json_is_refused_by_key(case: str, tiny_bundle: Path, tmp_path: Path, image: Path, capsys) -> None:
    edit, message = BROKEN[case]
    root = broken_bundle(tiny_bundle, tmp_path / "bundle", edit)
    expected = f"{root / 'model.json'}: {message}"
    with pytest.raises(BundleError) as info:
        load_bundle(root)
    assert str(info.value) == expected
    out = tmp_path / "out"
    assert cli.main([str(image), "-o", str(out), "--model", str(root), "--quiet"]) == 2
    assert f"fundus-infer: error: {expected}" in capsys.readouterr().err.splitlines()
    assert not (out / "summary.json").exists() and not list(out.glob("eye*"))


def test_cpp_refuses_the_same_model_json_with_the_same_message(
    cpp_binary: Path, tiny_bundle: Path, tmp_path: Path, image: Path
) -> None:
    for number, (case, (edit, message)) in enumerate(BROKEN.items()):
        root = broken_bundle(tiny_bundle, tmp_path / f"bundle{number}", edit)
        out = tmp_path / f"out{number}"
        result = subprocess.run(
            [str(cpp_binary), str(image), "-o", str(out), "--model", str(root), "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (case, result.stderr)
        assert f"fundus-infer: error: {root / 'model.json'}: {message}" in result.stderr.splitlines(), case
        assert not (out / "summary.json").exists() and not list(out.glob("eye*")), case


def test_nan_literal_threshold_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    text = (root / "model.json").read_text().replace('"threshold": 0.5', '"threshold": NaN')
    (root / "model.json").write_text(text)
    with pytest.raises(BundleError, match=r"model\.json: threshold must be a finite number in \(0, 1\) \(got nan\)"):
        load_bundle(root)


def test_exported_bundle_loads_and_its_contract_round_trips(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    spec = bundle.spec
    assert (bundle.tile, bundle.overlap, bundle.threshold, bundle.vessel_index) == (256, 32, 0.5, 1)
    assert set(spec.files) == {"fp32", "fp32_static"}
    assert BundleSpec.from_json(spec.contract(), "again") == spec
    meta = json.loads((tiny_bundle / "model.json").read_text())
    assert {k: meta[k] for k in spec.contract() if k != "files"} == {
        k: v for k, v in spec.contract().items() if k != "files"
    }


def test_save_refuses_what_the_loader_would_refuse(tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    before = (root / "model.json").read_bytes()
    bundle = load_bundle(root)
    bundle.meta["tiling"]["overlap"] = 300
    with pytest.raises(BundleError, match=r"model\.json: tiling\.overlap must be"):
        bundle.save()
    assert (root / "model.json").read_bytes() == before
    bundle.meta["tiling"]["overlap"] = 16
    bundle.meta.setdefault("metrics", {})["note"] = {"free": ["form", None is None]}  # provenance stays free-form
    bundle.save()
    reloaded = load_bundle(root)
    assert reloaded.overlap == 16 and reloaded.meta["metrics"]["note"] == {"free": ["form", True]}


def test_register_file_updates_the_contract(tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    bundle = load_bundle(root)
    copy = root / "sub" / "copy.onnx"
    copy.parent.mkdir()
    shutil.copy(root / "model.onnx", copy)
    bundle.register_file("fp16", copy)
    assert bundle.has("fp16") and bundle.spec.files["fp16"].path == "sub/copy.onnx"
    assert bundle.model_path("fp16") == copy


def test_export_refuses_a_checkpoint_whose_contract_is_broken(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from fundus_vessels.export.onnx_export import export_bundle
    from fundus_vessels.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(tiny_checkpoint)
    ckpt["tiling"] = {"tile": 250, "overlap": 32}
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, ckpt)
    with pytest.raises(BundleError, match=rf"{bad}: tiling\.tile must be {TILE_RULE} \(got 250\)"):
        export_bundle(bad, tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "model.onnx").exists()
