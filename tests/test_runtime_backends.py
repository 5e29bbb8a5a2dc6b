"""Backends on the tiny exported model: ONNX Runtime and OpenCV DNN agree with PyTorch eager."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fundus_vessels.runtime.backends import BackendError, create_backend, resolve_backend
from fundus_vessels.runtime.backends.trt import tensorrt_status
from fundus_vessels.runtime.bundle import BundleError, load_bundle

TOLERANCE = 1e-4  # probabilities


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 1, 256, 256)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tiny_bundle: Path, tiny_checkpoint: Path, tiles: np.ndarray) -> np.ndarray:
    return create_backend("torch", load_bundle(tiny_bundle), checkpoint=tiny_checkpoint).predict(tiles)


@pytest.mark.parametrize("name", ["ort", "opencv", "auto"])
def test_backend_matches_pytorch(name: str, tiny_bundle: Path, tiles: np.ndarray, reference: np.ndarray) -> None:
    backend = create_backend(name, load_bundle(tiny_bundle))
    out = backend.predict(tiles)
    assert out.shape == (3, 256, 256) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=TOLERANCE)
    assert ((out >= 0) & (out <= 1)).all()


def test_auto_without_tensorrt_or_a_gpu_is_opencv_for_fp32(tiny_bundle: Path, tmp_path: Path) -> None:
    if tensorrt_status() is None:
        pytest.skip("TensorRT is available here")
    bundle = load_bundle(tiny_bundle)
    assert resolve_backend("auto", bundle, "fp32") == "opencv"  # the faster CPU engine, same masks
    assert resolve_backend("auto", bundle, "fp16") == "ort"  # OpenCV DNN runs the FP32 static file only
    meta = json.loads((tiny_bundle / "model.json").read_text())
    del meta["files"]["fp32_static"]
    no_static = Path(shutil.copytree(tiny_bundle, tmp_path / "no-static"))
    (no_static / "model.json").write_text(json.dumps(meta))
    assert resolve_backend("auto", load_bundle(no_static), "fp32") == "ort"


def test_tensorrt_absent_is_a_clear_error(tiny_bundle: Path) -> None:
    reason = tensorrt_status()
    if reason is None:
        pytest.skip("TensorRT is available here")
    with pytest.raises(BackendError, match="TensorRT backend unavailable"):
        create_backend("trt", load_bundle(tiny_bundle), "fp16")


def test_missing_precision_names_what_the_bundle_has(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match=r"no int8 model .*has: fp32, fp32_static"):
        create_backend("ort", load_bundle(tiny_bundle), "int8")


def test_opencv_refuses_reduced_precision(tiny_bundle: Path) -> None:
    with pytest.raises(BackendError, match="fp32 only"):
        create_backend("opencv", load_bundle(tiny_bundle), "fp16")


def test_torch_without_checkpoint_says_how_to_give_one(tiny_bundle: Path) -> None:
    with pytest.raises(BackendError, match="--checkpoint"):
        create_backend("torch", load_bundle(tiny_bundle))


def test_changed_model_file_fails_the_sha_check(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        create_backend("ort", load_bundle(copy))


def _three_channel_onnx(path: Path) -> None:
    """A 1x1-conv + softmax model that takes 3 input channels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "three_channels",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 256, 256])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2, 256, 256])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_input_channels_must_match_model_json(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    bundle = load_bundle(copy)
    _three_channel_onnx(copy / "model.onnx")
    bundle.register_file("fp32", copy / "model.onnx")
    with pytest.raises(BundleError, match="1 channel"):
        create_backend("ort", bundle)


def test_bundle_for_other_input_channels_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    meta = json.loads((copy / "model.json").read_text())
    meta["input"]["channels"] = 3
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"input\.channels must be 1"):
        load_bundle(copy)
