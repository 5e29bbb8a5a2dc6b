"""The shipped bundle in models/: loads, is self-consistent, and both runtimes agree on DRIVE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, PRECISION_FILES, load_bundle, shipped_bundle, shipped_names
from fundus_vessels.runtime.imageio import read_image

SHIPPED = DEFAULT_BUNDLE
pytestmark = pytest.mark.skipif(not (SHIPPED / "model.json").is_file(), reason=f"no shipped bundle at {SHIPPED}")
IMAGES = ("01_test.tif", "02_test.tif")


def test_bundle_files_match_their_hashes_and_stay_small() -> None:
    bundle = load_bundle(SHIPPED)
    for precision in ("fp32", "fp32_static", "fp16", "int8", "int8_cpu"):
        path = bundle.model_path(precision)  # verifies sha256
        assert path.name == PRECISION_FILES[precision]
        assert path.stat().st_size < 40 * 2**20
    drive = bundle.meta["metrics"]["drive_test"]["fov_pooled"]
    assert 0.5 < drive["miou"] <= 1 and 0.5 < drive["auc"] <= 1
    assert "not a diagnostic device" in bundle.meta["intended_use"]


@pytest.fixture(scope="module")
def python_outputs(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("py")
    images = [data_root / "DRIVE" / "test" / "images" / name for name in IMAGES]
    proc = subprocess.run(
        [sys.executable, "-m", "fundus_vessels.runtime", *map(str, images), "-o", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_fundus_infer_default_model_on_drive(python_outputs: Path) -> None:
    summary = json.loads((python_outputs / "summary.json").read_text())
    assert not summary["failures"]
    for name in IMAGES:
        stem = Path(name).stem
        mask = read_image(python_outputs / f"{stem}_mask.png")
        assert mask.shape == (584, 565) and set(np.unique(mask)) <= {0, 255}
        assert 0.05 < (mask > 0).mean() < 0.2  # DRIVE vessels cover about 12 % of the image
        assert (python_outputs / f"{stem}_overlay.png").is_file()


def test_cpp_binary_matches_python_on_drive(
    python_outputs: Path, cpp_binary: Path, data_root: Path, tmp_path: Path
) -> None:
    images = [data_root / "DRIVE" / "test" / "images" / name for name in IMAGES]
    proc = subprocess.run(
        [str(cpp_binary), *map(str, images), "-o", str(tmp_path), "--model", str(SHIPPED), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in IMAGES:
        stem = Path(name).stem
        py_mask, cpp_mask = (read_image(d / f"{stem}_mask.png") for d in (python_outputs, tmp_path))
        assert (py_mask == cpp_mask).mean() >= 0.999
        py_prob, cpp_prob = (read_image(d / f"{stem}_prob.png").astype(int) for d in (python_outputs, tmp_path))
        assert np.abs(py_prob - cpp_prob).max() <= 2


@pytest.mark.slow
def test_fundus_infer_default_model_reproduces_the_recorded_drive_test_figures(data_root: Path, tmp_path: Path) -> None:
    """``fundus-infer`` with no ``--model`` on the 20 DRIVE test images, scored by the project's evaluation."""
    recorded = load_bundle(SHIPPED).meta["metrics"]
    assert "fundus_infer_drive_test" in recorded, "scripts/ship_model.sh records the product path's figures"
    images = data_root / "DRIVE" / "test" / "images"
    out, scored = tmp_path / "infer", tmp_path / "scored"
    infer = [sys.executable, "-m", "fundus_vessels.runtime", str(images), "-o", str(out), "--quiet"]
    assert subprocess.run(infer, capture_output=True, text=True, timeout=900).returncode == 0
    evaluate = [
        sys.executable, "-m", "fundus_vessels.train.evaluate", "--predictions", str(out), "--model", str(SHIPPED),
        "--data", "drive", "--split", "test", "--data-root", str(data_root), "--out", str(scored), "--panels", "0",
    ]  # fmt: skip
    proc = subprocess.run(evaluate, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads((scored / "metrics.json").read_text())["fov"]["pooled"]
    # the product path runs whole-image passes where the evaluation tiles: within 0.1 point of it (docs/benchmark.md)
    for source, tolerance in (("fundus_infer_drive_test", (2e-4, 3e-4)), ("drive_test", (1e-3, 1e-3))):
        want = recorded[source]["fov_pooled"]
        assert got["miou"] == pytest.approx(want["miou"], abs=tolerance[0]), source
        assert got["f1"] == pytest.approx(want["f1"], abs=tolerance[1]), source
        # the probability PNG stores p to 1/255, which ties some scores: AUC within 0.001 of PyTorch's
        assert got["auc"] == pytest.approx(want["auc"], abs=1e-3 if source == "drive_test" else 1e-5), source


@pytest.mark.parametrize("name", shipped_names())
def test_shipped_bundles_hold_no_denormal_weights(name: str) -> None:
    """Denormal float32 weights take a slow CPU path (8.5x slower for unet-drive-chase): export flushes them."""
    onnx = pytest.importorskip("onnx")
    from fundus_vessels.calib.onnx_graph import denormal_count

    bundle = load_bundle(shipped_bundle(name))
    for precision, entry in bundle.spec.files.items():
        if not entry.path.endswith(".onnx"):
            continue
        path = bundle.model_path(precision, verify=False)
        assert denormal_count(onnx.load(str(path))) == 0, f"{path}: denormal weights (re-export or flush them)"


def test_flush_denormals_keeps_the_outputs() -> None:
    """Flushing changes no probability: denormal weights contribute below float32 resolution."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime
    from onnx import numpy_helper

    from fundus_vessels.calib.onnx_graph import denormal_count, flush_denormals

    graph = onnx.load(str(load_bundle(SHIPPED).model_path("fp32")))
    weights = next(t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and t.dims[0] > 4)
    values = numpy_helper.to_array(weights).copy()
    values.flat[::7] = np.float32(1e-40)  # plant denormals into the first convolution's weights
    weights.CopyFrom(numpy_helper.from_array(values, weights.name))
    x = np.random.default_rng(0).standard_normal((1, 1, 256, 256)).astype(np.float32)

    def probabilities(model: object) -> np.ndarray:
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    before, planted = probabilities(graph), denormal_count(graph)
    assert planted >= values.size // 7
    assert flush_denormals(graph) == planted
    assert denormal_count(graph) == 0
    np.testing.assert_allclose(probabilities(graph), before, atol=1e-6)
