"""Checkpoint → ONNX bundle: FP32 with a dynamic batch, and a fixed-shape variant for OpenCV DNN."""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxslim
import torch
from torch import nn

from fundus_vessels.calib.onnx_graph import flush_denormals
from fundus_vessels.export.errors import ExportError
from fundus_vessels.export.graph_rewrites import softmax_to_sigmoid, split_concat_conv
from fundus_vessels.export.metadata import INPUT_NAME, OUTPUT_NAME, bundle_meta
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle
from fundus_vessels.runtime.imageio import write_bytes
from fundus_vessels.train.checkpoint import load_model

OPSET = 17
# ops whose presence means shapes are computed at run time: OpenCV 4.6 DNN cannot load them
SHAPE_OPS = frozenset({"Shape", "Size", "ConstantOfShape", "Expand", "Range", "NonZero"})
# exported output vs PyTorch on a random batch: anything larger is an exporter bug
EXPORT_TOLERANCE = 1e-4


class ProbabilityModel(nn.Module):
    """The trained network plus its softmax: logits (N, C, H, W) → class probabilities."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(image), dim=1)


def torch_to_onnx(model: nn.Module, tile: int, *, dynamic_batch: bool, opset: int = OPSET) -> onnx.ModelProto:
    """Trace ``model`` (in eval mode, so BatchNorm is folded into the convolutions) to ONNX.

    The graph is as traced; :func:`export_bundle` then applies the exact rewrites of
    :func:`rewrite_for_runtime` and checks the result against PyTorch.

    Input ``image`` (N, 1, tile, tile), output ``probabilities`` (N, C, tile, tile); N is
    symbolic (``batch``) when ``dynamic_batch`` else fixed to 1.
    """
    wrapped = ProbabilityModel(model).eval()
    example = torch.zeros(1, 1, tile, tile)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 marks the TorchScript exporter deprecated; the dynamo one needs onnxscript,
        # which the export extra does not install. The TorchScript exporter folds BN and emits
        # the plain Conv/ConvTranspose graph every runtime here (incl. OpenCV 4.6) accepts.
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        torch.onnx.export(
            wrapped,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def rewrite_for_runtime(graph: onnx.ModelProto) -> list[str]:
    """Apply :mod:`export.graph_rewrites` in place (same outputs, faster in ONNX Runtime CPU).

    Returns one line per rewrite, recorded in ``model.json`` as the file's ``graph_rewrites``.
    """
    lines = [f"{name}: Softmax(2 classes) -> Sigmoid of logit differences" for name in softmax_to_sigmoid(graph)]
    lines += [f"{name}: Conv(Concat(a, b)) -> Conv(a) + Conv(b)" for name in split_concat_conv(graph)]
    return lines


def simplify(graph: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim (constant folding, dead/identity node removal), then the full onnx checker."""
    slimmed = onnxslim.slim(graph)
    onnx.checker.check_model(slimmed, full_check=True)
    return slimmed


def op_counts(graph: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each op type the graph has."""
    return dict(Counter(node.op_type for node in graph.graph.node))


def assert_static(graph: onnx.ModelProto, path: Path) -> None:
    """Raise if the graph computes shapes at run time (OpenCV DNN would refuse it)."""
    found = sorted(SHAPE_OPS & set(op_counts(graph)))
    if found:
        raise ExportError(f"{path}: static model still has shape ops {found}; OpenCV DNN cannot load it")


def save_onnx(graph: onnx.ModelProto, path: Path) -> None:
    """Serialise a model atomically."""
    write_bytes(path, graph.SerializeToString())


def check_against_torch(model: nn.Module, path: Path, tile: int, batch: int) -> float:
    """Run ``path`` in ONNX Runtime on a random batch; return max |Δp| vs PyTorch or raise."""
    from fundus_vessels.runtime.backends.ort import open_session

    x = np.random.default_rng(0).standard_normal((batch, 1, tile, tile)).astype(np.float32)
    with torch.no_grad():
        expected = ProbabilityModel(model).eval()(torch.from_numpy(x)).numpy()
    session = open_session(path)
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    error = float(np.abs(got - expected).max())
    if not error <= EXPORT_TOLERANCE:
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by {error:.3g} (> {EXPORT_TOLERANCE})")
    return error


def any_size_graph(graph: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``graph`` whose input and output take any height and width (symbolic dims)."""
    out = onnx.ModelProto()
    out.CopyFrom(graph)
    for value in (*out.graph.input, *out.graph.output):
        dims = value.tensor_type.shape.dim if hasattr(value, "tensor_type") else value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    del out.graph.value_info[:]  # intermediate shapes inferred from a tile would contradict other sizes
    return out


def write_dynamic_variant(bundle: Bundle, whole_image: int | None = None) -> Path:
    """``model.dynamic.onnx``: ``model.onnx`` (same nodes and weights) taking any height and width.

    ONNX Runtime refuses inputs that contradict a fixed dim, so the whole-image passes
    (``model.json`` ``tiling.whole_image``) need this file. Its output is checked against
    ``model.onnx`` on a tile. ``whole_image``: also set that limit in ``model.json`` (saved).
    """
    import onnxruntime as ort

    source = bundle.model_path("fp32")
    path = bundle.root / PRECISION_FILES["fp32_dynamic"]
    save_onnx(any_size_graph(onnx.load(str(source))), path)
    tile = bundle.tile
    x = np.random.default_rng(0).standard_normal((1, 1, tile, tile), dtype=np.float32)
    runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (source, path)]
    a, b = (r.run(None, {INPUT_NAME: x})[0] for r in runs)
    error = float(np.abs(a - b).max())
    if error > EXPORT_TOLERANCE:
        raise ExportError(f"{path}: differs from {source.name} by {error:g} on a tile")
    shape = ["batch", 1, "height", "width"]
    bundle.register_file("fp32_dynamic", path, input_shape=shape, source_sha256=bundle.spec.files["fp32"].sha256)
    if whole_image is not None:
        bundle.meta["tiling"]["whole_image"] = int(whole_image)
    bundle.save()
    return path


def export_bundle(
    checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike, *, static: bool = True, name: str | None = None
) -> Path:
    """Write ``model.onnx`` (+ ``model.static.onnx``) and ``model.json`` into ``out_dir``.

    Args:
        checkpoint_path: a training checkpoint (see :mod:`train.checkpoint`).
        out_dir: the bundle folder (created; existing model files are replaced).
        static: also write the fixed 1×1×tile×tile variant without shape ops.
        name: bundle name recorded in ``model.json`` (default: the folder name).

    Returns:
        The bundle folder.
    """
    model, ckpt = load_model(checkpoint_path)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tile = int(ckpt["tiling"]["tile"])
    bundle = Bundle(root, bundle_meta(ckpt, model, name or root.resolve().name, OPSET, checkpoint_path))
    bundle.meta["source_checkpoint"] = Path(checkpoint_path).name

    variants = [("fp32", True)] + ([("fp32_static", False)] if static else [])
    for precision, dynamic in variants:
        path = root / PRECISION_FILES[precision]
        graph = torch_to_onnx(model, tile, dynamic_batch=dynamic)
        rewrites = rewrite_for_runtime(graph)
        graph = simplify(graph)
        flushed = flush_denormals(graph)
        if not dynamic:
            assert_static(graph, path)
        save_onnx(graph, path)
        error = check_against_torch(model, path, tile, batch=2 if dynamic else 1)
        shape = ["batch" if dynamic else 1, 1, tile, tile]
        bundle.register_file(
            precision,
            path,
            input_shape=shape,
            max_abs_diff_vs_torch=error,
            ops=op_counts(graph),
            graph_rewrites=rewrites,
            denormals_flushed=flushed,
        )
    bundle.save()
    return root
