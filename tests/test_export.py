"""Export stages on the tiny random-weight U-Net: bundle round trip, static, FP16, parity, engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fundus_vessels.export.cli import main
from fundus_vessels.export.metadata import json_safe
from fundus_vessels.export.onnx_export import SHAPE_OPS, export_bundle, op_counts
from fundus_vessels.runtime.bundle import BundleError, load_bundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle made through the command line: onnx (+ static), then fp16."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    assert main(["onnx", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--name", "tiny"]) == 0
    assert main(["fp16", "--bundle", str(out)]) == 0
    return out


def walk(value: object):
    """Every value nested in a JSON document."""
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        yield from walk(child)


def test_model_json_round_trip(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    meta = bundle.meta
    assert meta["format"] == "fundus-bundle/1" and meta["name"] == "tiny"
    assert "not a diagnostic device" in meta["intended_use"]
    assert meta["input"] == {"name": "image", "channels": 1, "layout": "NCHW", "dtype": "float32"}
    assert meta["output"]["vessel_index"] == 1 and meta["output"]["activation"] == "softmax"
    assert (bundle.tile, bundle.overlap, bundle.threshold) == (256, 32, 0.5)
    assert meta["architecture"]["parameters"] > 0 and meta["versions"]["opset"] >= 17
    assert set(meta["files"]) == {"fp32", "fp32_static", "fp16"}
    for precision in meta["files"]:
        bundle.model_path(precision)  # sha256 verified
    assert not any(v is None for v in walk(json.loads((bundle_dir / "model.json").read_text())))


def test_fp32_has_dynamic_batch_and_softmax_output(bundle_dir: Path) -> None:
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape[1:], out.name) == ("image", [1, 256, 256], "probabilities")
    x = np.random.default_rng(1).standard_normal((3, 1, 256, 256)).astype(np.float32)
    probs = session.run(None, {"image": x})[0]
    assert probs.shape == (3, 2, 256, 256)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_static_variant_loads_in_opencv_and_matches(bundle_dir: Path) -> None:
    graph = onnx.load(str(bundle_dir / "model.static.onnx"))
    assert not SHAPE_OPS & set(op_counts(graph))
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 256, 256]
    x = np.random.default_rng(2).standard_normal((1, 1, 256, 256)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(bundle_dir / "model.static.onnx"))
    net.setInput(x)
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(net.forward() - session.run(None, {"image": x})[0]).max() <= 1e-4


def test_fp16_keeps_io_and_output_activation_in_fp32(bundle_dir: Path) -> None:
    graph = onnx.load(str(bundle_dir / "model.fp16.onnx"))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert "BatchNormalization" not in op_counts(graph)
    (head,) = [n for n in graph.graph.node if n.op_type == "Sigmoid"]
    assert head.output[0] == "probabilities"  # computed in FP32, no FP16 round trip after it


def test_export_rewrites_the_softmax_head_into_an_exact_sigmoid(bundle_dir: Path, tiny_checkpoint: Path) -> None:
    from fundus_vessels.export.graph_rewrites import softmax_to_sigmoid
    from fundus_vessels.export.onnx_export import torch_to_onnx
    from fundus_vessels.train.checkpoint import load_model

    entry = load_bundle(bundle_dir).meta["files"]["fp32"]
    assert entry["graph_rewrites"] and "Softmax" not in entry["ops"] and entry["ops"]["Sigmoid"] == 1
    traced = torch_to_onnx(load_model(tiny_checkpoint)[0], 256, dynamic_batch=True)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(traced)
    assert softmax_to_sigmoid(rewritten) == ["/Softmax"] and softmax_to_sigmoid(rewritten) == []
    x = np.random.default_rng(3).standard_normal((2, 1, 256, 256)).astype(np.float32) * 3
    before, after = (
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        for m in (traced, rewritten)
    )
    assert before.shape == after.shape and np.abs(before - after).max() < 1e-6


def test_export_splits_each_decoder_concat_into_two_convolutions(bundle_dir: Path) -> None:
    entry = load_bundle(bundle_dir).meta["files"]["fp32"]
    assert "Concat" not in entry["ops"] and entry["ops"]["Add"] == 4  # one per decoder level
    assert sum("Conv(Concat(a, b))" in line for line in entry["graph_rewrites"]) == 4


def _conv_graph(concat_users: int, group: int) -> onnx.ModelProto:
    """x (2 ch), y (3 ch) and z (1 ch) concatenated into a 3x3 conv with 4 outputs, then LeakyReLU.

    ``concat_users=2`` also makes the concatenation a graph output; ``group=2`` a grouped conv.
    """
    helper, rng = onnx.helper, np.random.default_rng(5)
    inputs = [
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["n", channels, 16, 16])
        for name, channels in (("x", 2), ("y", 3), ("z", 1))
    ]
    weight = rng.standard_normal((4, 6 // group, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    inits = [onnx.numpy_helper.from_array(weight, "w"), onnx.numpy_helper.from_array(bias, "b")]
    nodes = [
        helper.make_node("Concat", ["x", "y", "z"], ["cat"], name="concat", axis=1),
        helper.make_node(
            "Conv", ["cat", "w", "b"], ["conv"], name="conv", kernel_shape=[3, 3], pads=[1] * 4, group=group
        ),
        helper.make_node("LeakyRelu", ["conv"], ["out"], name="act", alpha=0.1),
    ]
    outputs = [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["n", 4, 16, 16])]
    if concat_users == 2:
        outputs.append(helper.make_tensor_value_info("cat", onnx.TensorProto.FLOAT, ["n", 6, 16, 16]))
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("concat_users", "group", "rewritten"), [(1, 1, True), (2, 1, False), (1, 2, False)])
def test_split_concat_conv_is_exact_and_leaves_other_graphs_alone(
    concat_users: int, group: int, rewritten: bool
) -> None:
    from fundus_vessels.export.graph_rewrites import split_concat_conv

    original = _conv_graph(concat_users, group)
    model = onnx.ModelProto()
    model.CopyFrom(original)
    assert split_concat_conv(model) == (["conv"] if rewritten else [])
    onnx.checker.check_model(model, full_check=True)
    ops = op_counts(model)
    assert (ops.get("Concat", 0), ops.get("Add", 0), ops["Conv"]) == ((0, 2, 3) if rewritten else (1, 0, 1))
    rng = np.random.default_rng(6)
    feeds = {name: rng.standard_normal((2, c, 16, 16)).astype(np.float32) for name, c in (("x", 2), ("y", 3), ("z", 1))}
    before, after = (
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(["out"], feeds)[0]
        for m in (original, model)
    )
    assert np.abs(before - after).max() < 1e-5


def test_parity_passes_for_every_exported_precision(bundle_dir: Path, tiny_checkpoint: Path) -> None:
    assert main(["parity", "--bundle", str(bundle_dir), "--checkpoint", str(tiny_checkpoint)]) == 0
    report = json.loads((bundle_dir / "parity.json").read_text())
    assert {"ort_fp32", "opencv_fp32", "ort_fp16"} <= set(report["backends"])
    fp16 = report["backends"]["ort_fp16"]
    assert fp16["pass"] and fp16["tile_max_abs_diff"] <= 2e-2 and fp16["mask_agreement"] >= 0.999
    assert report["backends"]["ort_fp32"]["image_max_abs_diff"] <= 1e-4
    # the keys, and their order, of the parity.json shipped with the bundles (synthetic planes have labels too)
    shipped = json.loads((REPO / "models" / "unet-drive" / "parity.json").read_text())
    assert list(report) == list(shipped) and list(report["inputs"]) == list(shipped["inputs"])
    assert list(report["reference_scores"]) == list(shipped["reference_scores"])
    for name in ("ort_fp32", "opencv_fp32", "ort_fp16"):
        assert list(report["backends"][name]) == list(shipped["backends"][name]), name
        assert list(report["backends"][name]["tolerance"]) == list(shipped["backends"][name]["tolerance"]), name


STORED_PARITY = sorted(
    str(path.relative_to(REPO))
    for pattern in ("models/*/parity.json", "docs/results/*/parity.json")
    for path in REPO.glob(pattern)
)


@pytest.mark.parametrize("stored", STORED_PARITY)
def test_stored_parity_json_reads_back_to_the_same_bytes(stored: str, tmp_path: Path) -> None:
    """ParityReport.to_json writes parity.json as it was written before it was typed: same keys, order, values."""
    from fundus_vessels.export.parity import ParityReport
    from fundus_vessels.runtime.imageio import write_json

    data = json.loads((REPO / stored).read_text())
    report = ParityReport.from_json(data)
    assert report.passed is data["pass"] and set(report.backends) == set(data["backends"])
    write_json(tmp_path / "parity.json", report.to_json())
    assert (tmp_path / "parity.json").read_bytes() == (REPO / stored).read_bytes()


def test_stored_parity_files_are_there() -> None:
    assert {"models/unet-drive/parity.json", "models/unet-multicamera/parity.json"} <= set(STORED_PARITY)


def test_parity_flags_a_perturbed_model(bundle_dir: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    graph = onnx.load(str(broken / "model.onnx"))
    weights = next(t for t in graph.graph.initializer if len(t.dims) == 4)
    values = onnx.numpy_helper.to_array(weights) * 1.05
    weights.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), weights.name))
    onnx.save(graph, str(broken / "model.onnx"))
    bundle = load_bundle(broken)
    bundle.register_file("fp32", broken / "model.onnx")  # consistent sha: only parity can catch it
    bundle.save()
    assert main(["parity", "--bundle", str(broken), "--checkpoint", str(tiny_checkpoint)]) == 1
    report = json.loads((broken / "parity.json").read_text())
    assert not report["pass"] and not report["backends"]["ort_fp32"]["pass"]
    assert report["backends"]["opencv_fp32"]["pass"]


def test_tampered_file_is_refused(bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "tampered"
    shutil.copytree(bundle_dir, broken)
    with open(broken / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(broken).model_path("fp32")
    assert main(["fp16", "--bundle", str(broken)]) == 2
    assert "model.onnx" in capsys.readouterr().err


def test_json_safe_drops_null_and_nan() -> None:
    assert json_safe({"a": None, "b": [1, None], "c": float("nan"), "d": (2, 3)}) == {
        "b": [1, "none"],
        "c": "nan",
        "d": [2, 3],
    }


def test_build_engine_without_tensorrt_says_so(bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    if _has_tensorrt():
        pytest.skip("TensorRT is installed here; this checks the message on machines without it")
    assert main(["build-engine", "--bundle", str(bundle_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "TensorRT is not installed" in err and "Traceback" not in err and len(err.splitlines()) == 1


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def test_export_bundle_without_static(tiny_checkpoint: Path, tmp_path: Path) -> None:
    root = export_bundle(tiny_checkpoint, tmp_path / "b", static=False)
    assert set(load_bundle(root).meta["files"]) == {"fp32"}


def test_build_engine_with_tensorrt(bundle_dir: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installable on this machine (needs the GPU device)")
    from fundus_vessels.export.engine import build_engine

    path = build_engine(bundle_dir, "fp16", max_batch=4)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert build_engine(bundle_dir, "fp16", max_batch=4).stat().st_mtime == path.stat().st_mtime  # cached


@pytest.mark.data
def test_parity_on_drive_test_image(bundle_dir: Path, tiny_checkpoint: Path, data_root: Path) -> None:
    from fundus_vessels.export.parity import run_parity

    report = run_parity(bundle_dir, tiny_checkpoint, data_root, images=1)
    assert report.source == "DRIVE test" and report.tiles == 9
    assert report.backends["ort_fp32"].agreement.miou_delta_points is not None
    assert report.backends["ort_fp32"].passed and report.backends["opencv_fp32"].passed
