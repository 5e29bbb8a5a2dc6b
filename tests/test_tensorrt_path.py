"""The TensorRT path, checked here without TensorRT: INT8 file rules, GPU key, engine staleness, providers, fallback.

TensorRT and CUDA cannot be installed on these machines; a stand-in replaces only the CUDA runtime
query (``FakeCudart``) and TensorRT's start-up. Everything else runs for real (ONNX Runtime, onnx).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fundus_vessels.calib.tensorrt_rules import check_bundle, tensorrt_int8_problems
from fundus_vessels.runtime.backends import BackendError, create_backend
from fundus_vessels.runtime.backends import ort as ort_backend
from fundus_vessels.runtime.backends import trt as trt_backend
from fundus_vessels.runtime.backends.device import GpuInfo, cuda_status, query_gpu
from fundus_vessels.runtime.backends.engines import (
    Profile,
    engine_filename,
    engine_path,
    loader_identity,
    sidecar_path,
    stale_reason,
)
from fundus_vessels.runtime.backends.ort_providers import provider_specs, tensorrt_options
from fundus_vessels.runtime.backends.trt_build import build_record
from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, load_bundle
from fundus_vessels.runtime.inference import DEFAULT_BATCH

REPO = Path(__file__).resolve().parent.parent
# written by fundus-infer --self-test (runtime/selftest.py) on a tiny bundle whose static model is perturbed, with
# ort_fp16 made to fail to open and the timings fixed: a passing and a failing result, skipped and errors
STORED_SELF_TEST = Path(__file__).resolve().parent / "data" / "self-test.json"


class FakeCudart:
    """Stand-in for cuda-python's runtime module: only the calls the device query makes."""

    def __init__(self, devices: list[tuple[bytes, int, int, int]], error: int = 0) -> None:
        self.devices, self.error = devices, error

    def cudaGetDeviceCount(self):
        return (self.error, 0 if self.error else len(self.devices))

    def cudaGetDeviceProperties(self, index: int):
        name, major, minor, sms = self.devices[index]
        return (0, SimpleNamespace(name=name, major=major, minor=minor, multiProcessorCount=sms))

    def cudaGetErrorName(self, err):
        return (0, b"cudaErrorInsufficientDriver")

    def cudaGetErrorString(self, err):
        return (0, b"CUDA driver version is insufficient for CUDA runtime version")


AGX_ORIN = (b"Orin\x00\x00", 8, 7, 16)
ORIN_NANO = (b"Orin", 8, 7, 8)
H100 = (b"NVIDIA H100 80GB HBM3", 9, 0, 132)


# --- 1. the TensorRT INT8 file obeys TensorRT's explicit-quantization rules --------------------------


def _qdq_graph(bias_type: int = TensorProto.INT8, zero: int = 0) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(weight), DQ(bias)) with the bias stored as ``bias_type``."""
    init = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(zero, np.int8), "z"),
        numpy_helper.from_array(np.ones((1, 1, 1, 1), np.int8), "w_q"),
        numpy_helper.from_array(np.ones(1, helper.tensor_dtype_to_np_dtype(bias_type)), "b_q"),
        numpy_helper.from_array(np.zeros(1, helper.tensor_dtype_to_np_dtype(bias_type)), "b_z"),
        numpy_helper.from_array(np.array([0.1], np.float32), "b_s"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"], name="dq_w"),
        helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], name="dq_b"),
        helper.make_node("Conv", ["xd", "w", "b"], ["y"], name="conv"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    graph = helper.make_graph(nodes, "g", [x], [y], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_rules_catch_int32_bias_dequantize_and_nonzero_zero_points() -> None:
    assert tensorrt_int8_problems(_qdq_graph(), []) == []
    int32 = tensorrt_int8_problems(_qdq_graph(TensorProto.INT32), [])
    assert any("dq_b: dequantizes INT32" in p for p in int32)
    assert any("zero point not 0" in p for p in tensorrt_int8_problems(_qdq_graph(zero=3), []))
    quantized_float = tensorrt_int8_problems(_qdq_graph(), ["conv", "missing"])
    assert any("conv: documented float node reads quantized weight" in p for p in quantized_float)
    assert any("missing: documented float node not in the graph" in p for p in quantized_float)


def test_fresh_tensorrt_int8_file_obeys_the_rules(tiny_bundle: Path, tmp_path: Path) -> None:
    """Quantize the tiny bundle for TensorRT (8 synthetic tiles): no INT32 bias, zero points 0, float ends float."""
    from fundus_vessels.calib.build import add_int8
    from fundus_vessels.calib.check import Gate
    from fundus_vessels.calib.tiles import Image, sample_tiles
    from fundus_vessels.runtime.preprocess import PreprocessConfig, preprocess
    from fundus_vessels.runtime.synthetic import make_synthetic_fundus

    images = []
    for seed in range(2):
        fundus = make_synthetic_fundus(320, 320, seed=seed)
        images.append(Image(f"synthetic/{seed}", preprocess(fundus.image_rgb, PreprocessConfig()), fundus.fov))
    tiles = sample_tiles(images, 4, 256, np.random.default_rng(0))
    bundle_dir = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    path = add_int8(bundle_dir, tiles, tiles, "minmax", gate=Gate(min_agreement=0.0, max_mean_abs_diff=1.0))
    assert check_bundle(bundle_dir) == []
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    dequantized = [
        inits[n.input[0]].data_type for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert dequantized and TensorProto.INT32 not in dequantized
    entry = load_bundle(bundle_dir).meta["files"]["int8"]["quantization"]
    assert entry["bias"].startswith("float")


def test_shipped_tensorrt_int8_file_obeys_the_rules() -> None:
    bundle = load_bundle(DEFAULT_BUNDLE)
    if not bundle.has("int8"):
        pytest.skip("the shipped bundle has no model.int8.onnx")
    if "bias" not in bundle.meta["files"]["int8"].get("quantization", {}):
        pytest.xfail("shipped model.int8.onnx predates float biases: re-make it with scripts/ship_model.sh")
    assert check_bundle(DEFAULT_BUNDLE) == []


# --- 3. one GPU key and one staleness rule for the builder and every loader ------------------------


def test_gpu_key_tells_agx_orin_from_orin_nano() -> None:
    agx, nano = query_gpu(FakeCudart([AGX_ORIN])), query_gpu(FakeCudart([ORIN_NANO]))
    assert agx == GpuInfo("Orin", (8, 7), 16) and agx.key == "orin-sm87-mp16" and nano.key == "orin-sm87-mp8"
    assert query_gpu(FakeCudart([H100])).key == "nvidia-h100-80gb-hbm3-sm90-mp132"
    assert engine_filename(agx, "10.3.0.26", "fp16") == "orin-sm87-mp16-trt10.3.0-fp16.engine"


def test_cuda_errors_are_reported_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = cuda_status(FakeCudart([], error=35))
    assert "cudaErrorInsufficientDriver" in reason and "cuda-python>=12,<13" in reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_status(FakeCudart([])) == "no CUDA device visible (CUDA_VISIBLE_DEVICES='')"
    assert cuda_status(FakeCudart([H100])) is None


def test_builder_record_satisfies_the_loader_and_any_change_makes_it_stale(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(Path(shutil.copytree(tiny_bundle, tmp_path / "b")))
    agx, nano = query_gpu(FakeCudart([AGX_ORIN])), query_gpu(FakeCudart([ORIN_NANO]))
    engine = engine_path(bundle.root, agx, "10.3.0.26", "fp32")
    record = build_record(bundle, agx, "10.3.0", "fp32", Profile(bundle.tile), 1024)
    assert "no such engine" in stale_reason(engine, record)
    engine.parent.mkdir()
    engine.write_bytes(b"plan")
    assert "nothing says what" in stale_reason(engine, record)  # no sidecar: never trusted
    sidecar_path(engine).write_text(json.dumps(record))
    assert stale_reason(engine, record) is None
    assert stale_reason(engine, loader_identity(bundle, agx, "10.3.0.26", "fp32")) is None  # loader agrees
    assert "gpu_key" in stale_reason(engine, loader_identity(bundle, nano, "10.3.0", "fp32"))
    assert "tensorrt" in stale_reason(engine, loader_identity(bundle, agx, "10.4.0", "fp32"))
    bundle.meta["files"]["fp32"]["sha256"] = "0" * 64  # the ONNX file changed since
    assert "source_sha256" in stale_reason(engine, loader_identity(bundle, agx, "10.3.0", "fp32"))
    bigger = build_record(bundle, agx, "10.3.0", "fp32", Profile(bundle.tile, max_batch=16), 1024)
    assert "profile" in stale_reason(engine, bigger)


def test_profile_is_tuned_for_the_runtime_batch() -> None:
    shapes = Profile(256).shapes()
    assert shapes["opt"] == [DEFAULT_BATCH, 1, 256, 256] and shapes["max"] == [8, 1, 256, 256]
    assert Profile(256, max_batch=2).shapes()["opt"] == [2, 1, 256, 256]
    with pytest.raises(ValueError):
        Profile(256, 0).shapes()


# --- 2. build-engine needs no torch and says in one sentence what is missing -----------------------


def test_build_engine_runs_without_torch(tiny_bundle: Path) -> None:
    """``build-engine`` with torch and TensorRT unimportable: one sentence, exit 2, torch never loaded."""
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['tensorrt'] = None\n"
        "from fundus_vessels.export.cli import main\n"
        f"code = main(['build-engine', '--bundle', {str(tiny_bundle)!r}])\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TensorRT is not installed" in lines[0] and "Traceback" not in done.stderr


# --- 4. ONNX Runtime's TensorRT provider is configured; the INT8 file follows the loaded providers ---


def test_tensorrt_provider_options(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    options = tensorrt_options(bundle, "fp16", tmp_path)
    assert options["trt_engine_cache_enable"] == "True" and options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_profile_opt_shapes"] == f"image:{DEFAULT_BATCH}x1x256x256"
    assert options["trt_profile_max_shapes"] == "image:8x1x256x256" and options["trt_fp16_enable"] == "True"
    assert tensorrt_options(bundle, "int8", tmp_path)["trt_int8_enable"] == "True"
    specs = provider_specs(["TensorrtExecutionProvider", "CPUExecutionProvider"], bundle, "fp32")
    assert specs[1] == "CPUExecutionProvider" and Path(specs[0][1]["trt_engine_cache_path"]).is_dir()


def test_int8_file_follows_the_providers_that_loaded(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CUDA provider listed as available but not loading (no GPU here) leaves the CPU: the CPU INT8 file runs."""
    bundle_dir = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    bundle = load_bundle(bundle_dir)
    for key, name in (("int8", "model.int8.onnx"), ("int8_cpu", "model.int8cpu.onnx")):
        shutil.copy(bundle_dir / "model.onnx", bundle_dir / name)
        bundle.register_file(key, bundle_dir / name)
    monkeypatch.setattr(ort_backend, "default_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    backend = create_backend("ort", bundle, "int8")
    assert backend.providers == ["CPUExecutionProvider"] and backend.model_path.name == "model.int8cpu.onnx"


# --- 6. auto falls back to ONNX Runtime when TensorRT fails to start ---------------------------------


def test_auto_falls_back_when_tensorrt_fails_to_start(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenTensorRT:
        def __init__(self, *args: object) -> None:
            raise BackendError("engine.plan: TensorRT could not deserialize the engine")

    monkeypatch.setattr(trt_backend, "engine_ready", lambda bundle, precision: True)
    monkeypatch.setattr(trt_backend, "TensorRTBackend", BrokenTensorRT)
    with caplog.at_level(logging.WARNING):
        backend = create_backend("auto", load_bundle(tiny_bundle))
    assert backend.name == "ort" and "could not deserialize" in caplog.text
    with pytest.raises(BackendError, match="could not deserialize"):
        create_backend("trt", load_bundle(tiny_bundle))  # asked for by name: no fallback


# --- self-test -----------------------------------------------------------------------------------------


def test_self_test_runs_what_is_here_and_says_what_it_could_not(tiny_bundle: Path, tmp_path: Path) -> None:
    from fundus_vessels.runtime.cli import main

    assert main(["--self-test", "-o", str(tmp_path), "--model", str(tiny_bundle)]) == 0
    report = json.loads((tmp_path / "self-test.json").read_text())
    assert set(report["results"]) == {"ort_fp32", "opencv_fp32"} and report["pass"]
    assert report["results"]["ort_fp32"]["tile_max_abs_diff"] <= 1e-4
    assert set(report["results"]["opencv_fp32"]["tiles_per_second"]) == {"1", "4", "8"}
    assert "model.fp16.onnx not in the bundle" in report["skipped"]["ort_fp16"]
    if trt_backend.tensorrt_status() is not None:
        assert report["skipped"]["trt_fp32"] == trt_backend.tensorrt_status()
    # the keys, and their order, of the stored self-test.json (written before the report was typed)
    stored = json.loads(STORED_SELF_TEST.read_text())
    assert list(report) == list(stored)
    for key in ("bundle", "reference", "inputs"):
        assert list(report[key]) == list(stored[key]), key
    for name in ("ort_fp32", "opencv_fp32"):  # with and without ONNX Runtime providers
        assert list(report["results"][name]) == list(stored["results"][name]), name


def test_self_test_json_keeps_its_stored_form(tmp_path: Path) -> None:
    """SelfTestReport reads the stored self-test.json back and writes it again byte for byte."""
    from fundus_vessels.runtime.imageio import write_json
    from fundus_vessels.runtime.selftest import CandidateResult, NotRun, RunError, SelfTestReport, format_table

    report = SelfTestReport.from_json(json.loads(STORED_SELF_TEST.read_text()))
    assert isinstance(report.outcomes["ort_fp32"], CandidateResult) and report.outcomes["ort_fp32"].passed
    assert report.outcomes["ort_fp16"] == RunError("model.fp16.onnx: ONNX Runtime could not load it (simulated)")
    assert report.outcomes["ort_int8"] == NotRun("model.int8.onnx not in the bundle")
    assert not report.outcomes["opencv_fp32"].passed and report.outcomes["opencv_fp32"].providers is None
    assert not report.passed
    write_json(tmp_path / "self-test.json", report.to_json())
    assert (tmp_path / "self-test.json").read_bytes() == STORED_SELF_TEST.read_bytes()
    table = format_table(report).splitlines()
    assert table[3] == ("reference    CPUExecutionProvider           -         -       -       -      12.3      49.4")
    assert table[5] == (
        "opencv_fp32  opencv                     0.102  100.0000  +0.000  +0.000      12.3      49.4  "
        "FAIL: max|Δp| 0.102 > 0.0001"
    )
    assert table[-2:] == ["ort_fp16     ERROR: model.fp16.onnx: ONNX Runtime could not load it (simulated)", "FAIL"]


def test_self_test_fails_outside_tolerance(tiny_bundle: Path, tmp_path: Path) -> None:
    """An FP32 file whose weights differ from model.onnx is caught: exit 1, the failure named."""
    from fundus_vessels.runtime.selftest import Settings, run_self_test

    bundle_dir = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    model = onnx.load(str(bundle_dir / "model.static.onnx"))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and len(init.dims) == 4:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(model, str(bundle_dir / "model.static.onnx"))
    bundle = load_bundle(bundle_dir)
    bundle.register_file("fp32_static", bundle_dir / "model.static.onnx")
    report = run_self_test(bundle, Settings(images=1, drawn_tiles=2, batches=(1,), repeats=1))
    assert not report.passed and not report.results["opencv_fp32"].passed
    assert any("max|Δp|" in f for f in report.results["opencv_fp32"].failures)


@pytest.mark.skipif(not os.environ.get("FUNDUS_DEVICE_SELF_TEST"), reason="device only: set FUNDUS_DEVICE_SELF_TEST=1")
def test_self_test_on_the_device(tmp_path: Path) -> None:  # pragma: no cover - needs a GPU with TensorRT
    from fundus_vessels.runtime.cli import main

    assert main(["--self-test", "-o", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "self-test.json").read_text())
    assert {"trt_fp16", "trt_int8"} <= set(report["results"]), report["skipped"] | report["errors"]


def test_summary_names_the_providers_that_ran(tiny_bundle: Path, tmp_path: Path) -> None:
    from fundus_vessels.runtime.cli import main

    assert main(["--demo", "--quiet", "-o", str(tmp_path), "--model", str(tiny_bundle), "--backend", "ort"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["providers"] == ["CPUExecutionProvider"]
