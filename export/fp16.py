"""FP32 ONNX → FP16 ONNX whose types TensorRT's strongly typed builder follows as written.

Inputs and outputs stay FP32 (runtimes feed the same tensors to every precision); the
convolutions run in FP16 except the first encoder block; the output activation (Sigmoid head, or
Softmax in graphs without the export rewrite) stays FP32 (exp of FP16 logits overflows above ~11).
BatchNorm must already be folded: its variance term is the usual FP16 overflow.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from fundus_vessels.export.errors import ExportError
from fundus_vessels.export.metadata import INPUT_NAME, OUTPUT_NAME
from fundus_vessels.export.onnx_export import op_counts, save_onnx, simplify
from fundus_vessels.runtime.bundle import PRECISION_FILES, load_bundle

FP32_OPS = ["Softmax", "Sigmoid"]
# The first encoder block (two 3x3 convs at full resolution) stays FP32: on real DRIVE tiles of the
# shipped model, an all-FP16 graph differed from FP32 by up to 0.039 in probability, almost all of
# it from rounding the normalised input and the first convolutions; keeping these two in FP32 gives
# 0.0034 (keeping only the first: 0.0077) for about 6% of the model's multiply-adds.
FP32_LEADING_CONVS = 2
# smoke check on a random batch; the parity command holds the real tolerance on real tiles
SMOKE_TOLERANCE = 2e-2


def to_fp16(graph: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 copy of ``graph`` with FP32 I/O and the ops of ``FP32_OPS`` kept in FP32."""
    if "BatchNormalization" in op_counts(graph):
        raise ExportError("model has unfolded BatchNormalization; export it in eval mode before FP16")
    leading = [n.name for n in graph.graph.node if n.op_type == "Conv"][:FP32_LEADING_CONVS]
    half = convert_float_to_float16(graph, keep_io_types=True, op_block_list=FP32_OPS, node_block_list=leading)
    drop_cast_round_trips(half)
    return simplify(half)  # also sorts the Cast nodes the converter appends out of order


def drop_cast_round_trips(graph: onnx.ModelProto) -> None:
    """Turn FP32→FP16→FP32 Cast pairs into Identity (in place): they only lose precision.

    The converter emits one on the FP32 output activation on its way to the FP32 graph output.
    """
    inferred = onnx.shape_inference.infer_shapes(graph).graph
    dtypes = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    producers = {out: node for node in graph.graph.node for out in node.output}
    for node in graph.graph.node:
        previous = producers.get(node.input[0]) if node.op_type == "Cast" else None
        if previous is None or previous.op_type != "Cast":
            continue
        if cast_target(node) == onnx.TensorProto.FLOAT and dtypes.get(previous.input[0]) == onnx.TensorProto.FLOAT:
            node.op_type = "Identity"
            del node.attribute[:]
            node.input[0] = previous.input[0]


def cast_target(node: onnx.NodeProto) -> int:
    """The ``to`` attribute of a Cast node."""
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "to")


def smoke_check(fp32_path: Path, fp16_path: Path, tile: int) -> float:
    """Max |Δp| of the FP16 model vs FP32 on a random batch of 2 (ONNX Runtime CPU)."""
    from fundus_vessels.runtime.backends.ort import open_session

    x = np.random.default_rng(0).standard_normal((2, 1, tile, tile)).astype(np.float32)
    outputs = []
    for path in (fp32_path, fp16_path):
        session = open_session(path)
        outputs.append(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])
    if not np.isfinite(outputs[1]).all():
        raise ExportError(f"{fp16_path}: FP16 model produces inf/NaN (overflow)")
    error = float(np.abs(outputs[1] - outputs[0]).max())
    if error > SMOKE_TOLERANCE:
        raise ExportError(f"{fp16_path}: FP16 differs from FP32 by {error:.3g} (> {SMOKE_TOLERANCE})")
    return error


def add_fp16(bundle_dir: str | os.PathLike) -> Path:
    """Write ``model.fp16.onnx`` next to the bundle's FP32 model and register it; returns its path."""
    bundle = load_bundle(bundle_dir)
    source = bundle.model_path("fp32")
    target = bundle.root / PRECISION_FILES["fp16"]
    save_onnx(to_fp16(onnx.load(str(source))), target)
    error = smoke_check(source, target, bundle.tile)
    bundle.register_file(
        "fp16",
        target,
        io_dtype="float32",
        fp32_ops=FP32_OPS,
        fp32_leading_convs=FP32_LEADING_CONVS,
        source_sha256=bundle.meta["files"]["fp32"]["sha256"],
        smoke_max_abs_diff_vs_fp32=error,
    )
    bundle.save()
    return target
