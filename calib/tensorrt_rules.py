"""TensorRT's explicit-quantization rules, checked on a QDQ ONNX file here, without TensorRT.

What TensorRT 10/11's ONNX parser and ``IQuantizeLayer`` / ``IDequantizeLayer`` (``NvInfer.h``)
accept, as onnx-tensorrt's operator table states it:

* ``DequantizeLinear`` reads INT8 (or FP8 / INT4) data, never INT32: an INT32 bias
  dequantize (ONNX Runtime's default ``QuantizeBias``) fails the parse;
* zero points are INT8 zeros: TensorRT quantization is symmetric;
* scales are positive and finite; activation scales are per-tensor (scalars), per-channel
  scales only on constant weights;
* opset 13 or newer (per-axis Q/DQ);
* the nodes ``model.json`` documents as float (``quantization.float_nodes``) exist and have
  float weights, so TensorRT runs them in FP16/FP32 as documented.

``python -m fundus_vessels.calib.tensorrt_rules BUNDLE`` checks a bundle's ``model.int8.onnx``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from fundus_vessels.calib.onnx_graph import producers as graph_producers
from fundus_vessels.runtime.bundle import load_bundle
from fundus_vessels.runtime.exit_status import ExitStatus

# element types TensorRT's DequantizeLinear takes
DEQUANTIZE_INPUTS = {TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4}
QDQ = ("QuantizeLinear", "DequantizeLinear")
MIN_OPSET = 13


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _type_name(data_type: int) -> str:
    return TensorProto.DataType.Name(data_type)


def _quantized_type(name: str, inits: dict, producers: dict) -> int | None:
    """Element type of a DequantizeLinear input: an initializer's, or its QuantizeLinear's zero point's."""
    if name in inits:
        return inits[name].data_type
    node = producers.get(name)
    if node is not None and node.op_type == "QuantizeLinear":
        return inits[node.input[2]].data_type if len(node.input) > 2 and node.input[2] in inits else TensorProto.UINT8
    return None


def _qdq_problems(node: onnx.NodeProto, inits: dict) -> list[str]:
    """Zero point and scale rules of one Q/DQ node."""
    problems = []
    if len(node.input) < 3 or not node.input[2]:
        if node.op_type == "QuantizeLinear":
            problems.append(f"{node.name}: no zero point (ONNX then means UINT8)")
    elif node.input[2] in inits:
        zero = inits[node.input[2]]
        if zero.data_type not in DEQUANTIZE_INPUTS:
            problems.append(f"{node.name}: zero point is {_type_name(zero.data_type)}, not INT8")
        if numpy_helper.to_array(zero).any():
            problems.append(f"{node.name}: zero point not 0 (TensorRT quantization is symmetric)")
    scale = inits.get(node.input[1])
    if scale is None:
        problems.append(f"{node.name}: scale {node.input[1]!r} is not a constant")
        return problems
    values = numpy_helper.to_array(scale)
    if not (np.isfinite(values).all() and (values > 0).all()):
        problems.append(f"{node.name}: scale not positive and finite")
    if values.size > 1 and node.input[0] not in inits:
        problems.append(f"{node.name}: per-channel scale on an activation (TensorRT: per-tensor only)")
    return problems


def _float_node_problems(model: onnx.ModelProto, float_nodes: list[str], inits: dict, producers: dict) -> list[str]:
    """The documented float nodes exist and none reads a dequantized constant (a quantized weight)."""
    nodes = {n.name: n for n in model.graph.node}
    problems = [f"{name}: documented float node not in the graph" for name in float_nodes if name not in nodes]
    for name in float_nodes:
        for tensor in nodes[name].input if name in nodes else []:
            source = producers.get(tensor)
            if source is not None and source.op_type == "DequantizeLinear" and source.input[0] in inits:
                problems.append(f"{name}: documented float node reads quantized weight {source.input[0]!r}")
    return problems


def tensorrt_int8_problems(model: onnx.ModelProto, float_nodes: list[str]) -> list[str]:
    """Every way ``model`` breaks TensorRT's explicit-quantization rules (empty: it obeys them)."""
    inits = {t.name: t for t in model.graph.initializer}
    producers = graph_producers(model.graph)
    problems = []
    if _opset(model) < MIN_OPSET:
        problems.append(f"opset {_opset(model)} < {MIN_OPSET} (per-axis QuantizeLinear/DequantizeLinear)")
    qdq = [n for n in model.graph.node if n.op_type in QDQ]
    if not any(n.op_type == "DequantizeLinear" for n in qdq):
        problems.append("no DequantizeLinear: not a QDQ model")
    for node in qdq:
        if node.op_type == "DequantizeLinear":
            kind = _quantized_type(node.input[0], inits, producers)
            if kind not in DEQUANTIZE_INPUTS:
                found = "an unknown type" if kind is None else _type_name(kind)
                problems.append(f"{node.name}: dequantizes {found} (TensorRT takes INT8/FP8/INT4 only)")
        problems.extend(_qdq_problems(node, inits))
    problems.extend(_float_node_problems(model, float_nodes, inits, producers))
    return problems


def check_bundle(bundle_dir: str | os.PathLike) -> list[str]:
    """:func:`tensorrt_int8_problems` of a bundle's ``model.int8.onnx`` against its documented float nodes."""
    bundle = load_bundle(bundle_dir)
    entry = bundle.meta["files"]["int8"]
    model = onnx.load(str(bundle.model_path("int8")))
    return tensorrt_int8_problems(model, list(entry.get("quantization", {}).get("float_nodes", [])))


def main(argv: list[str] | None = None) -> int:
    """Print each problem of the bundles named in ``argv``; exit 1 if any."""
    failed = 0
    for folder in argv if argv is not None else sys.argv[1:]:
        problems = check_bundle(folder)
        for problem in problems:
            print(f"{folder}/model.int8.onnx: {problem}", file=sys.stderr)
        print(f"{folder}/model.int8.onnx: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        failed += bool(problems)
    return ExitStatus.of_run(failed)


if __name__ == "__main__":
    sys.exit(main())
