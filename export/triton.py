"""``fundus-export triton``: a Triton Inference Server model repository for a bundle.

One model per runtime, each a folder ``REPO/<model>/`` holding ``config.pbtxt``, the bundle's
``model.json`` and a version folder ``1/``:

- ``<name>``: ``model.onnx`` under the ``onnxruntime_onnx`` platform;
- ``<name>_trt_<precision>``: the bundle's TensorRT engines of that precision (built on devices by
  ``fundus-export build-engine``) under ``tensorrt_plan``, one file per compute capability, chosen
  by Triton through ``cc_model_filenames``;
- ``<name>_python`` (``--python-model``): the same ``model.onnx`` run by onnxruntime inside
  Triton's Python backend, for Triton builds without the onnxruntime backend (such as the server
  bundled in ``nvidia-pytriton``).

Each ``config.pbtxt`` is built as Triton's own ``ModelConfig`` protobuf message (from
``tritonclient``) and written in protobuf text format; input/output names, dims and types come
from ``model.json``. ``parameters`` carry the sha256 of the served file and of ``model.json``, which
``fundus-infer --backend triton`` checks against its local bundle before sending a tile.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.backends.engines import ENGINE_DIR, sidecar_path
from fundus_vessels.runtime.backends.triton import (
    PARAM_MODEL_JSON_SHA,
    PARAM_MODEL_SHA,
    PARAM_PRECISION,
    triton_model_name,
)
from fundus_vessels.runtime.bundle import MODEL_JSON, Bundle, load_bundle, sha256_file
from fundus_vessels.runtime.imageio import write_bytes

VERSION = "1"
CONFIG = "config.pbtxt"
DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
PYTHON_MODEL_SOURCE = "triton_python_model.py"


@dataclass(frozen=True)
class ServingOptions:
    """What the server does with requests: batch limits, queueing and model instances."""

    max_batch: int = 8
    queue_delay_us: int = 2000
    instances: int = 1
    onnx_kind: str = "gpu"

    def check(self) -> None:
        if self.max_batch < 1 or self.instances < 1 or self.queue_delay_us < 0:
            raise ExportError(f"need max batch and instances >= 1 and a queue delay >= 0, got {self}")
        if self.onnx_kind not in KINDS:
            raise ExportError(f"instance kind must be one of {', '.join(KINDS)}, got {self.onnx_kind!r}")


def model_config_pb2():
    """Triton's model-configuration protobuf module (ships with ``tritonclient``)."""
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def triton_dtype(bundle: Bundle) -> str:
    """The Triton type of the model's input and output, from ``model.json``."""
    dtype = str(bundle.meta["input"].get("dtype", "float32"))
    if dtype not in DTYPES:
        raise ExportError(f"{bundle.root / MODEL_JSON}: input dtype {dtype!r} has no Triton type here")
    return DTYPES[dtype]


def base_config(bundle: Bundle, name: str, options: ServingOptions, max_batch: int):
    """The ``ModelConfig`` every model of the repository shares: I/O, batching, provenance."""
    pb = model_config_pb2()
    meta, tile = bundle.meta, bundle.tile
    dtype = pb.DataType.Value(triton_dtype(bundle))
    config = pb.ModelConfig(name=name, max_batch_size=max_batch)
    config.input.add(name=str(meta["input"]["name"]), data_type=dtype, dims=[bundle.in_channels, tile, tile])
    classes = len(meta["output"]["classes"])
    config.output.add(name=str(meta["output"]["name"]), data_type=dtype, dims=[classes, tile, tile])
    preferred = sorted({b for b in (max_batch // 2, max_batch) if b >= 1})
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = options.queue_delay_us
    config.parameters[PARAM_MODEL_JSON_SHA].string_value = sha256_file(bundle.root / MODEL_JSON)
    return config


def write_config(folder: Path, config) -> Path:
    """``config.pbtxt`` in protobuf text format (atomic)."""
    from google.protobuf import text_format

    path = folder / CONFIG
    write_bytes(path, text_format.MessageToString(config).encode())
    return path


def copy_file(source: Path, target: Path) -> None:
    """Copy atomically (temp file + rename), so a served repository never sees half a file."""
    write_bytes(target, source.read_bytes())


def start_model(repo: Path, name: str, bundle: Bundle) -> Path:
    """An empty model folder with the bundle's ``model.json`` (a previous export is replaced)."""
    folder = repo / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / VERSION).mkdir(parents=True)
    copy_file(bundle.root / MODEL_JSON, folder / MODEL_JSON)
    return folder


def onnx_model(repo: Path, bundle: Bundle, name: str, options: ServingOptions) -> Path:
    """``<name>``: ``model.onnx`` on the onnxruntime backend."""
    source = bundle.model_path("fp32")
    folder = start_model(repo, name, bundle)
    copy_file(source, folder / VERSION / "model.onnx")
    config = base_config(bundle, name, options, options.max_batch)
    config.platform = "onnxruntime_onnx"
    config.instance_group.add(
        count=options.instances, kind=model_config_pb2().ModelInstanceGroup.Kind.Value(KINDS[options.onnx_kind])
    )
    config.parameters[PARAM_MODEL_SHA].string_value = sha256_file(source)
    config.parameters[PARAM_PRECISION].string_value = "fp32"
    return write_config(folder, config)


def python_model(repo: Path, bundle: Bundle, name: str, options: ServingOptions) -> Path:
    """``<name>_python``: ``model.onnx`` run by onnxruntime in Triton's Python backend (CPU)."""
    source = bundle.model_path("fp32")
    folder = start_model(repo, name, bundle)
    copy_file(source, folder / VERSION / "model.onnx")
    code = resources.files("fundus_vessels.export").joinpath(PYTHON_MODEL_SOURCE).read_bytes()
    write_bytes(folder / VERSION / "model.py", code)
    config = base_config(bundle, name, options, options.max_batch)
    config.backend = "python"
    config.instance_group.add(count=options.instances, kind=model_config_pb2().ModelInstanceGroup.Kind.KIND_CPU)
    config.parameters[PARAM_MODEL_SHA].string_value = sha256_file(source)
    config.parameters[PARAM_PRECISION].string_value = "fp32"
    return write_config(folder, config)


def current_engines(bundle: Bundle) -> dict[str, list[tuple[Path, dict]]]:
    """The bundle's engines whose sidecar says they were built from its current ONNX, by precision."""
    found: dict[str, list[tuple[Path, dict]]] = {}
    for engine in sorted((bundle.root / ENGINE_DIR).glob("*.engine")):
        try:
            record = json.loads(sidecar_path(engine).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            print(f"fundus-export triton: skipping {engine.name}: no readable sidecar says what it was built from")
            continue
        precision = str(record.get("precision", ""))
        expected = bundle.meta.get("files", {}).get(precision, {}).get("sha256")
        if expected is None or record.get("source_sha256") != expected:
            print(f"fundus-export triton: skipping {engine.name}: built from another {precision} ONNX (stale)")
            continue
        found.setdefault(precision, []).append((engine, record))
    return found


def plan_filename(record: dict) -> str:
    """``model_sm<major><minor>_trt<version>.plan``: one file per compute capability in a version folder."""
    major, minor = str(record["compute_capability"]).split(".")
    return f"model_sm{major}{minor}_trt{record['tensorrt']}.plan"


def tensorrt_model(
    repo: Path, bundle: Bundle, name: str, precision: str, engines: list[tuple[Path, dict]], options: ServingOptions
) -> Path:
    """``<name>_trt_<precision>``: one engine per compute capability, picked by ``cc_model_filenames``."""
    by_cc: dict[str, tuple[Path, dict]] = {}
    for engine, record in engines:
        cc = str(record["compute_capability"])
        if cc in by_cc:
            raise ExportError(
                f"{engine} and {by_cc[cc][0]}: two {precision} engines for compute capability {cc}; Triton "
                "takes one per capability (cc_model_filenames): remove the one for the other GPU or TensorRT"
            )
        by_cc[cc] = (engine, record)
    engine_batch = min(int(record["profile"]["max"][0]) for _, record in by_cc.values())
    folder = start_model(repo, name, bundle)
    config = base_config(bundle, name, options, min(options.max_batch, engine_batch))
    config.platform = "tensorrt_plan"
    config.instance_group.add(count=options.instances, kind=model_config_pb2().ModelInstanceGroup.Kind.KIND_GPU)
    for cc, (engine, record) in sorted(by_cc.items()):
        filename = plan_filename(record)
        copy_file(engine, folder / VERSION / filename)
        config.cc_model_filenames[cc] = filename
    config.parameters[PARAM_MODEL_SHA].string_value = sha256_file(bundle.model_path(precision))
    config.parameters[PARAM_PRECISION].string_value = precision
    return write_config(folder, config)


def export_repository(
    bundle_dir: str | os.PathLike,
    repo: str | os.PathLike,
    options: ServingOptions | None = None,
    python: bool = False,
) -> list[Path]:
    """Write (or refresh) the bundle's models in Triton repository ``repo``; returns their ``config.pbtxt``."""
    options = options or ServingOptions()
    options.check()
    bundle = load_bundle(bundle_dir)
    root = Path(repo)
    root.mkdir(parents=True, exist_ok=True)
    name = triton_model_name(bundle)
    written = [onnx_model(root, bundle, name, options)]
    for precision, engines in sorted(current_engines(bundle).items()):
        model = triton_model_name(bundle, precision, engine=True)
        written.append(tensorrt_model(root, bundle, model, precision, engines, options))
    if python:
        written.append(python_model(root, bundle, f"{name}_python", options))
    return written
