"""Triton: the model repository parses into Triton's own ModelConfig; the client backend end to end.

The end-to-end tests run a real ``tritonserver`` on the CPU: the one bundled in the
``nvidia-pytriton`` wheel (``bash scripts/get_tritonserver.sh``; or ``TRITONSERVER_HOME``). That
build has only the Python backend, so the ``onnxruntime_onnx`` model cannot load there (Triton:
"unable to find backend library for backend 'onnxruntime'"); the repository's ``<name>_python``
model serves the same ``model.onnx`` through onnxruntime instead. Where the server has an
onnxruntime backend, the ONNX model is tested too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from runtime_fixtures import write_synthetic_images

from fundus_vessels.runtime.backends import BackendError
from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, load_bundle, sha256_file
from fundus_vessels.runtime.imageio import read_image, write_json

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed: pip install 'fundus-vessels[triton]'")
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from fundus_vessels.export.cli import main as export_main
from fundus_vessels.export.errors import ExportError
from fundus_vessels.export.triton import CONFIG, ServingOptions, export_repository
from fundus_vessels.runtime.backends.triton import TritonUrl

REPO = Path(__file__).resolve().parent.parent
NAME = json.loads((DEFAULT_BUNDLE / "model.json").read_text())["name"]  # the default bundle's own name
FP32_TOLERANCE = 1e-4  # max |p - p_ort| of the FP32 parity gate (runtime.agreement TOLERANCES["fp32"])


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def bundle_with_engines(tmp_path: Path, engines: list[tuple[str, str, str]]) -> Path:
    """A copy of the shipped bundle with engine files (TensorRT cannot run here: bytes + sidecar)."""
    root = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, root)
    meta = load_bundle(root).meta
    for stem, cc, precision in engines:
        (root / "engines").mkdir(exist_ok=True)
        (root / "engines" / f"{stem}.engine").write_bytes(b"plan " + stem.encode())
        record = {
            "compute_capability": cc,
            "tensorrt": "10.3.0",
            "precision": precision,
            "source_sha256": meta["files"][precision]["sha256"] if "stale" not in stem else "0" * 64,
            "profile": {"min": [1, 1, 256, 256], "opt": [4, 1, 256, 256], "max": [4, 1, 256, 256]},
        }
        write_json(root / "engines" / f"{stem}.json", record)
    return root


def test_repository_configs_parse_as_triton_model_configs(tmp_path: Path) -> None:
    bundle = bundle_with_engines(
        tmp_path, [("orin-sm87-mp16-trt10.3.0-fp16", "8.7", "fp16"), ("h100-sm90-mp132-trt10.3.0-fp16", "9.0", "fp16")]
    )
    code = export_main(["triton", "--bundle", str(bundle), "--out", str(tmp_path / "repo"), "--python-model"])
    assert code == 0
    repo = tmp_path / "repo"
    assert sorted(p.name for p in repo.iterdir()) == [NAME, f"{NAME}_python", f"{NAME}_trt_fp16"]
    meta = json.loads((bundle / "model.json").read_text())
    for model in repo.iterdir():
        config = parse_config(model / CONFIG)
        assert config.name == model.name
        assert (model / "model.json").read_bytes() == (bundle / "model.json").read_bytes()
        (inp,), (out,) = config.input, config.output
        assert inp.name == meta["input"]["name"] and list(inp.dims) == [1, 256, 256]
        assert out.name == meta["output"]["name"] and list(out.dims) == [2, 256, 256]
        assert inp.data_type == out.data_type == model_config_pb2.TYPE_FP32
        assert config.dynamic_batching.max_queue_delay_microseconds == 2000
        assert config.parameters["fundus_model_json_sha256"].string_value == sha256_file(bundle / "model.json")
    onnx = parse_config(repo / NAME / CONFIG)
    assert onnx.platform == "onnxruntime_onnx" and onnx.max_batch_size == 8
    assert onnx.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (repo / NAME / "1" / "model.onnx").read_bytes() == (bundle / "model.onnx").read_bytes()
    assert onnx.parameters["fundus_model_sha256"].string_value == sha256_file(bundle / "model.onnx")
    plan = parse_config(repo / f"{NAME}_trt_fp16" / CONFIG)
    assert plan.platform == "tensorrt_plan" and plan.max_batch_size == 4  # capped by the engines' profile
    assert dict(plan.cc_model_filenames) == {"8.7": "model_sm87_trt10.3.0.plan", "9.0": "model_sm90_trt10.3.0.plan"}
    for cc, filename in plan.cc_model_filenames.items():
        engine = "orin-sm87-mp16" if cc == "8.7" else "h100-sm90-mp132"
        expected = (bundle / "engines" / f"{engine}-trt10.3.0-fp16.engine").read_bytes()
        assert (repo / f"{NAME}_trt_fp16" / "1" / filename).read_bytes() == expected
    assert plan.parameters["fundus_precision"].string_value == "fp16"
    python = parse_config(repo / f"{NAME}_python" / CONFIG)
    assert python.backend == "python" and (repo / f"{NAME}_python" / "1" / "model.py").is_file()


def test_stale_engines_are_left_out_and_capabilities_must_be_unique(tmp_path: Path) -> None:
    bundle = bundle_with_engines(tmp_path, [("x-sm86-stale-fp16", "8.6", "fp16")])
    written = export_repository(bundle, tmp_path / "repo", ServingOptions(onnx_kind="cpu"))
    assert [p.parent.name for p in written] == [NAME]
    assert parse_config(written[0]).instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    twice = bundle_with_engines(tmp_path / "b", [("a-sm86-fp16", "8.6", "fp16"), ("b-sm86-fp16", "8.6", "fp16")])
    with pytest.raises(ExportError, match=r"two fp16 engines for compute capability 8\.6"):
        export_repository(twice, tmp_path / "repo2")


def test_url_forms() -> None:
    assert TritonUrl.parse("localhost:8001") == TritonUrl("grpc", "localhost:8001", None)
    assert TritonUrl.parse("http://h:8000/m_python") == TritonUrl("http", "h:8000", "m_python")
    with pytest.raises(BackendError, match="scheme"):
        TritonUrl.parse("ftp://h:1")
    from fundus_vessels.runtime.pipeline import Segmenter

    with pytest.raises(BackendError, match="needs --url"):
        Segmenter(backend="triton")


# ---- end to end against a real tritonserver (CPU) ----


def server_home() -> Path | None:
    given = os.environ.get("TRITONSERVER_HOME")
    home = Path(given) if given else REPO / "build-tritonserver" / "pytriton" / "tritonserver"
    return home if (home / "bin" / "tritonserver").is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory):
    """``tritonserver`` on the CPU serving the shipped bundle's repository; yields (grpc url, http url, home)."""
    home = server_home()
    if home is None:
        pytest.skip("no tritonserver here: run `bash scripts/get_tritonserver.sh` (or set TRITONSERVER_HOME)")
    repo = tmp_path_factory.mktemp("triton") / "repo"
    export_repository(DEFAULT_BUNDLE, repo, ServingOptions(onnx_kind="cpu"), python=True)
    ports = [free_port() for _ in range(3)]
    has_ort = (home / "backends" / "onnxruntime").is_dir()
    models = [f"{NAME}_python", *([NAME] if has_ort else [])]
    env = dict(os.environ)
    # the Python backend's stub embeds libpython: this interpreter's (its packages: numpy, onnxruntime);
    # the stub ignores PYTHONPATH, so a virtual environment's packages are not seen
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [sysconfig.get_config_var("LIBDIR"), env.get("LD_LIBRARY_PATH")])
    )
    env["PYTHONHOME"] = sys.base_prefix
    command = [
        str(home / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={home / 'backends'}",
    ]
    command += [f"--http-port={ports[0]}", f"--grpc-port={ports[1]}", f"--metrics-port={ports[2]}"]
    command += ["--model-control-mode=explicit", *[f"--load-model={m}" for m in models], "--exit-timeout-secs=5"]
    log = open(repo.parent / "server.log", "w")  # noqa: SIM115 - kept open for the server's life
    server = subprocess.Popen(["nice", "-n", "5", *command], stdout=log, stderr=subprocess.STDOUT, env=env)
    import tritonclient.http as http

    client = http.InferenceServerClient(f"127.0.0.1:{ports[0]}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if all(client.is_model_ready(m) for m in models):
                break
        except Exception:  # not listening yet
            pass
        time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"tritonserver did not get ready:\n{(repo.parent / 'server.log').read_text()[-3000:]}")
    yield f"grpc://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[0]}", has_ort
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_triton_backend_matches_local_onnxruntime(triton_server, tmp_path: Path) -> None:
    from fundus_vessels.runtime.pipeline import Segmenter

    grpc_url, http_url, has_ort = triton_server
    image = read_image(write_synthetic_images(tmp_path / "in", count=1)[0])
    local = Segmenter(backend="ort", threads=1).segment(image)
    urls = [f"{grpc_url}/{NAME}_python", f"{http_url}/{NAME}_python", *([grpc_url] if has_ort else [])]
    for url in urls:
        remote = Segmenter(backend="triton", url=url).segment(image)
        assert np.abs(remote.probability - local.probability).max() <= FP32_TOLERANCE, url
        assert np.array_equal(remote.fov, local.fov)


@pytest.mark.slow
def test_fundus_infer_backend_triton_end_to_end(triton_server, tmp_path: Path) -> None:
    from fundus_vessels.runtime.cli import main

    grpc_url, _, _ = triton_server
    write_synthetic_images(tmp_path / "in", count=2)
    code = main(
        [
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--quiet",
            "--backend",
            "triton",
            "--url",
            f"{grpc_url}/{NAME}_python",
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["succeeded"] == 2 and summary["backend"] == "triton"
    assert summary["bundle"]["model_sha256"] == sha256_file(DEFAULT_BUNDLE / "model.onnx")


@pytest.mark.slow
def test_a_server_model_of_another_bundle_is_refused(triton_server, tmp_path: Path) -> None:
    """The local model.json decides preprocessing, so a served model from another bundle must not run."""
    from fundus_vessels.runtime.pipeline import Segmenter

    grpc_url, _, _ = triton_server
    other = tmp_path / "other"
    shutil.copytree(DEFAULT_BUNDLE, other)
    meta = json.loads((other / "model.json").read_text())
    meta["threshold"] = 0.4
    write_json(other / "model.json", meta)
    with pytest.raises(BackendError, match="not the model of bundle"):
        Segmenter(other, backend="triton", url=f"{grpc_url}/{NAME}_python")
    with pytest.raises(BackendError, match="not ready"):
        Segmenter(backend="triton", url=f"{grpc_url}/no_such_model")
