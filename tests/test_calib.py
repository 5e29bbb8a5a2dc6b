"""INT8 calibration: deterministic real tiles, a QDQ model that runs, and a bad calibration refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from fundus_vessels.calib.check import CalibrationError
from fundus_vessels.calib.cli import main
from fundus_vessels.calib.tiles import Image, TileSet, calibration_sets, quotas, sample_tiles
from fundus_vessels.export.onnx_export import export_bundle
from fundus_vessels.runtime.backends.ort import open_session, session_predictor
from fundus_vessels.runtime.bundle import load_bundle
from fundus_vessels.runtime.preprocess import PreprocessConfig, preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.train.checkpoint import load_model, save_checkpoint


def dark_pixel_detector(model: nn.Module, gain: float = 10.0) -> nn.Module:
    """Set a U-Net's weights so vessel probability = sigmoid(-gain · input): dark pixels are vessels.

    A random-weight U-Net answers ~the same probability everywhere, so no calibration could
    hurt it; this one depends on every input pixel through the first encoder block, the skip
    connection and the last decoder block (identity 3×3 centre taps; +2 keeps LeakyReLU linear).
    """

    def centre_tap(conv: nn.Conv2d, src: int, dst: int) -> None:
        conv.weight[dst, src, 1, 1] = 1.0

    encoder, decoder = model.encoders[0], model.decoders[-1]
    with torch.no_grad():
        for block in (encoder, decoder):
            for layer in block.modules():
                if isinstance(layer, nn.Conv2d):
                    layer.weight.zero_()
                elif isinstance(layer, nn.BatchNorm2d):
                    layer.reset_running_stats()
                    layer.weight.fill_(1.0)
                    layer.bias.zero_()
        centre_tap(encoder[0], 0, 0)
        encoder[1].bias[0] = 2.0
        centre_tap(encoder[3], 0, 0)
        centre_tap(decoder[0], decoder[0].in_channels // 2, 0)  # first skip channel
        centre_tap(decoder[3], 0, 0)
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1, 0] = -gain
        model.head.bias[1] = 2.0 * gain
    return model


@pytest.fixture(scope="module")
def detector_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, ckpt = load_model(tiny_checkpoint)
    ckpt["model"] = dark_pixel_detector(model).state_dict()
    folder = tmp_path_factory.mktemp("calib")
    save_checkpoint(folder / "detector.pt", ckpt)
    return export_bundle(folder / "detector.pt", folder / "bundle", static=False)


@pytest.fixture(scope="module")
def synthetic_sets() -> tuple[TileSet, TileSet]:
    """Calibration tiles from two synthetic fundus images, held-out tiles from a third."""
    images = []
    for seed in range(3):
        fundus = make_synthetic_fundus(320, 320, seed=seed)
        images.append(Image(f"synthetic/{seed}", preprocess(fundus.image_rgb, PreprocessConfig()), fundus.fov))
    rng = np.random.default_rng(0)
    return sample_tiles(images[:2], 8, 256, rng), sample_tiles(images[2:], 8, 256, rng)


def copy_bundle(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_qdq_int8_model_is_produced_and_runs(detector_bundle: Path, synthetic_sets, tmp_path: Path) -> None:
    from fundus_vessels.calib.build import add_int8

    calibration, heldout = synthetic_sets
    bundle_dir = copy_bundle(detector_bundle, tmp_path / "b")
    path = add_int8(bundle_dir, calibration, heldout, "minmax", {"data": ["synthetic"], "seed": 0})
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    entry = load_bundle(bundle_dir).meta["files"]["int8"]
    assert entry["calibration"]["method"] == "minmax" and entry["calibration"]["count"] == 8
    assert entry["heldout_check"]["mask_agreement"] >= 0.995
    assert "/network/head/Conv" in entry["quantization"]["float_nodes"]
    load_bundle(bundle_dir).model_path("int8")  # sha256 recorded
    probs = session_predictor(open_session(path))(heldout.tiles[:2])
    assert probs.shape == (2, 256, 256) and np.isfinite(probs).all()


def test_all_black_calibration_is_refused(detector_bundle: Path, synthetic_sets, tmp_path: Path) -> None:
    from fundus_vessels.calib.build import add_int8

    calibration, heldout = synthetic_sets
    black = TileSet(np.full_like(calibration.tiles, -1.0), calibration.fov, calibration.origins)  # (0-0.5)/0.5
    bundle_dir = copy_bundle(detector_bundle, tmp_path / "b")
    with pytest.raises(CalibrationError, match="rejected"):
        add_int8(bundle_dir, black, heldout, "minmax")
    assert not (bundle_dir / "model.int8.onnx").exists()
    assert "int8" not in load_bundle(bundle_dir).meta["files"]


def test_quotas_cover_every_region_and_pass_on_shortfalls() -> None:
    assert quotas(10, {"interior": 100, "border": 100, "background": 100}) == {
        "interior": 5,
        "border": 3,
        "background": 2,
    }
    assert sum(quotas(10, {"interior": 100, "border": 100, "background": 0}).values()) == 10


@pytest.mark.data
def test_calibration_set_is_deterministic_real_tiles(data_root: Path) -> None:
    config = PreprocessConfig()
    first = calibration_sets(data_root, ["drive"], config, 256, 12, seed=3)
    again = calibration_sets(data_root, ["drive"], config, 256, 12, seed=3)
    other = calibration_sets(data_root, ["drive"], config, 256, 12, seed=4)
    calibration, heldout = first
    assert calibration.origins == again[0].origins and np.array_equal(calibration.tiles, again[0].tiles)
    assert calibration.origins != other[0].origins
    assert calibration.tiles.shape == (12, 1, 256, 256) and calibration.tiles.dtype == np.float32
    assert all(n > 0 for n in calibration.region_counts().values())
    assert not {o["image"] for o in calibration.origins} & {o["image"] for o in heldout.origins}
    assert all(o["image"].startswith("drive_") and 21 <= int(o["image"][6:]) <= 40 for o in calibration.origins)
    # a tile is exactly the preprocessed training image there (cropped, never resampled)
    from fundus_vessels.runtime.imageio import read_image

    origin = calibration.origins[0]
    photo = read_image(data_root / "DRIVE" / "training" / "images" / f"{origin['image'][6:]}_training.tif")
    plane = preprocess(photo, config)
    y, x = origin["y"], origin["x"]
    crop = plane[y : y + 256, x : x + 256]
    assert np.array_equal(calibration.tiles[0, 0, : crop.shape[0], : crop.shape[1]], crop)


@pytest.mark.data
def test_calib_command_records_provenance(detector_bundle: Path, data_root: Path, tmp_path: Path) -> None:
    bundle_dir = copy_bundle(detector_bundle, tmp_path / "b")
    args = ["--bundle", str(bundle_dir), "--data", "drive", "--data-root", str(data_root), "--tiles", "8"]
    args += ["--seed", "1"]
    assert main(args) == 0
    meta = json.loads((bundle_dir / "model.json").read_text())
    calibration = meta["files"]["int8"]["calibration"]
    assert calibration["data"] == ["drive"] and calibration["seed"] == 1 and calibration["count"] == 8
    assert calibration["split"] == "training"


def test_calib_command_names_a_missing_dataset(detector_bundle: Path, tmp_path: Path, capsys) -> None:
    args = ["--bundle", str(detector_bundle), "--data-root", str(tmp_path), "--tiles", "4"]
    assert main(args) == 2
    assert "DRIVE" in capsys.readouterr().err


def test_cpu_int8_keeps_narrow_layers_float_and_sigmoid_head(
    detector_bundle: Path, synthetic_sets, tmp_path: Path
) -> None:
    from fundus_vessels.calib.build import add_int8

    calibration, heldout = synthetic_sets
    bundle_dir = copy_bundle(detector_bundle, tmp_path / "b")
    path = add_int8(bundle_dir, calibration, heldout, "minmax", target="cpu")
    assert path.name == "model.int8cpu.onnx" and not (bundle_dir / "model.int8.onnx").exists()
    graph = onnx.load(str(path))
    ops = {n.op_type for n in graph.graph.node}
    assert "Sigmoid" in ops and "Softmax" not in ops
    zero_points = [t for t in graph.graph.initializer if t.name.endswith("_zero_point") and t.data_type == 2]
    assert zero_points  # uint8 activations
    entry = load_bundle(bundle_dir).meta["files"]["int8_cpu"]
    assert entry["quantization"]["target"] == "cpu" and entry["heldout_check"]["mask_agreement"] >= 0.995
    # the first encoder convolutions of a narrow U-Net stay float; the output still matches FP32
    assert any("encoders.0" in name for name in entry["quantization"]["float_nodes"])
    fp32 = session_predictor(open_session(load_bundle(bundle_dir).model_path("fp32")))(heldout.tiles[:2])
    probs = session_predictor(open_session(path))(heldout.tiles[:2])
    assert probs.shape == fp32.shape and np.isfinite(probs).all()


def test_tensorrt_int8_keeps_the_graph_ends_float_with_zero_points_zero(
    detector_bundle: Path, synthetic_sets, tmp_path: Path
) -> None:
    from fundus_vessels.calib.build import add_int8
    from fundus_vessels.calib.graphs import tensorrt_float_nodes

    fp32 = onnx.load(str(load_bundle(detector_bundle).model_path("fp32")))
    ends = tensorrt_float_nodes(fp32)
    first, *_ = (n for n in fp32.graph.node if n.op_type == "Conv")
    assert first.name in ends and "/network/head/Conv" in ends and "/Softmax" in ends  # now a Sigmoid
    # input conv, the last decoder block (two convs, the first one split in two parts by export), head
    assert sum(n.op_type == "Conv" for n in fp32.graph.node if n.name in ends) == 5
    (last_join,) = [n for n in fp32.graph.node if n.op_type == "Add" and "decoders.3" in n.name]
    assert last_join.name in ends  # the split conv's sum stays float with both its parts
    calibration, heldout = synthetic_sets
    bundle_dir = copy_bundle(detector_bundle, tmp_path / "b")
    path = add_int8(bundle_dir, calibration, heldout)  # TensorRT target, its default method
    entry = load_bundle(bundle_dir).meta["files"]["int8"]
    assert entry["calibration"]["method"] == "entropy"
    assert entry["quantization"]["float_nodes"] == ends and set(entry["quantization"]["float_reasons"]) == set(ends)
    graph = onnx.load(str(path))
    zero_points = [t for t in graph.graph.initializer if t.name.endswith("_zero_point")]
    assert zero_points and all(not onnx.numpy_helper.to_array(t).any() for t in zero_points)
    assert all(t.data_type != onnx.TensorProto.UINT8 for t in zero_points)
