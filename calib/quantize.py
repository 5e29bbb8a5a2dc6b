"""FP32 ONNX → static INT8 QDQ ONNX with ONNX Runtime's quantizer, as TensorRT wants it.

QDQ format (explicit precision: both ONNX Runtime and TensorRT's strongly typed builder read
the scales from the graph), per-channel symmetric INT8 weights, symmetric INT8 activations
(TensorRT supports only zero-point 0), entropy calibration by default (``calib.targets.DEFAULT_METHODS``;
the shipped bundles use percentile),
float biases. The graph's two ends stay float (:func:`fundus_vessels.calib.graphs.tensorrt_float_nodes`;
TensorRT runs them in FP16/FP32): the first conv, whose 8-bit input symmetric INT8 would halve,
and the head with the conv + LeakyReLU feeding it and the output activation (the two logits'
*difference* decides the mask at p = 0.5, so INT8 steps there flip pixels along every vessel edge).
Head + Softmax alone float gave 98.5 % held-out mask agreement on the shipped model; the ends float,
99.6 % (gate 99.5 %).

``target="cpu"`` writes a second file tuned for ONNX Runtime's CPU kernels instead
(``model.int8cpu.onnx``): asymmetric UINT8 activations (MLAS's fast path is U8S8; S8S8 on AVX2 ran
slower than FP32), 7-bit per-channel weights (``reduce_range``: AVX2 without VNNI multiplies u8·s8
pairs into saturating int16) and the narrow full-resolution convolutions kept FP32; both files
inherit the FP32 graph's exact Sigmoid head (:mod:`export.graph_rewrites`). TensorRT cannot take that file
(zero points ≠ 0), hence two files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from fundus_vessels.calib.graphs import narrow_nodes, tensorrt_float_nodes
from fundus_vessels.calib.onnx_graph import flush_denormals
from fundus_vessels.calib.onnx_graph import producers as graph_producers
from fundus_vessels.calib.targets import METHOD_NAMES, TARGETS
from fundus_vessels.runtime.imageio import write_bytes

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
assert sorted(METHODS) == list(METHOD_NAMES)
# why the TensorRT file keeps its float nodes (recorded in model.json)
TENSORRT_FLOAT_REASONS = {
    "input_conv": "reads the 8-bit input plane in [-1, 1]: symmetric INT8 (step 1/127) halves its 255 levels",
    "output_end": "head, its input conv + activation and the output op: the logit difference decides the mask at p=0.5",
}
# how the TensorRT file keeps its biases (recorded in model.json; TensorRT fuses float biases into the INT8 conv)
BIAS_FLOAT = "float: TensorRT's DequantizeLinear takes INT8/FP8/INT4, not INT32 (QuantizeBias off)"
# tiles per calibration pass: the calibrators hold every activation of a pass in memory
PASS_TILES = 4


class TileReader(CalibrationDataReader):
    """Feeds tiles one at a time; ``set_range`` lets the quantizer calibrate in passes."""

    def __init__(self, tiles: np.ndarray, input_name: str = "image") -> None:
        self.tiles = tiles
        self.input_name = input_name
        self.set_range(0, len(tiles))

    def __len__(self) -> int:
        return len(self.tiles)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return {self.input_name: self.tiles[self._next - 1 : self._next]}


def float_nodes(graph: onnx.ModelProto) -> list[str]:
    """Names of the nodes kept in FP32: the Softmax and the Conv that feeds it."""
    producers = graph_producers(graph.graph)
    keep = []
    for node in graph.graph.node:
        if node.op_type == "Softmax":
            keep.append(node.name)
            head = producers.get(node.input[0])
            if head is not None and head.op_type == "Conv":
                keep.append(head.name)
    return keep


def unshare_float_weights(model: onnx.ModelProto, float_nodes: list[str]) -> int:
    """Give each float node its own copy of a constant it shares with a quantized node; returns copies made.

    Export deduplicates equal initializers, so a float conv and a quantized one may read one weight
    tensor; the quantizer then feeds both the dequantized INT8 copy and the float node is not float.
    """
    floats = set(float_nodes)
    inits = {t.name: t for t in model.graph.initializer}
    quantized_reads = {name for n in model.graph.node if n.name not in floats for name in n.input if name in inits}
    copies = 0
    for node in model.graph.node:
        if node.name not in floats:
            continue
        for i, name in enumerate(node.input):
            if name in quantized_reads:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}_float_{copies}"
                model.graph.initializer.append(copy)
                node.input[i] = copy.name
                copies += 1
    return copies


def pass_size(count: int) -> int:
    """Largest divisor of ``count`` up to :data:`PASS_TILES` (the quantizer needs equal passes)."""
    return max(d for d in range(1, PASS_TILES + 1) if count % d == 0)


def quantize_int8(
    fp32_path: str | os.PathLike, out_path: str | os.PathLike, tiles: np.ndarray, method: str, target: str = "tensorrt"
) -> dict:
    """Write the QDQ INT8 model calibrated on ``tiles`` (n, 1, t, t) for ``target``; returns its settings."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {sorted(METHODS)}, got {method!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
    if len(tiles) == 0:
        raise ValueError("no calibration tiles")
    graph = onnx.load(str(fp32_path))
    excluded = float_nodes(graph)
    if target == "tensorrt":
        ends = tensorrt_float_nodes(graph)
        inputs = {i.name for i in graph.graph.input}
        reasons = {
            n.name: TENSORRT_FLOAT_REASONS["input_conv" if n.input and n.input[0] in inputs else "output_end"]
            for n in graph.graph.node
            if n.name in ends or n.name in excluded
        }
        excluded = [name for name in reasons]
        unshare_float_weights(graph, excluded)
        settings = {
            "target": target,
            "format": "QDQ",
            "activations": "QInt8 symmetric",
            "weights": "QInt8 symmetric per-channel",
            "float_nodes": excluded,
            "float_reasons": reasons,
            "float_precision": "TensorRT runs the float nodes in FP16/FP32 (explicit-precision mixed graph)",
            "bias": BIAS_FLOAT,
        }
        activation_type, symmetric, reduce_range = QuantType.QInt8, True, False
    else:
        excluded += [name for name in narrow_nodes(graph) if name not in excluded]
        settings = {
            "target": target,
            "format": "QDQ",
            "activations": "QUInt8 asymmetric",
            "weights": "QInt8 symmetric per-channel, reduce_range (7-bit)",
            "float_nodes": excluded,
        }
        activation_type, symmetric, reduce_range = QuantType.QUInt8, False, True
    with tempfile.TemporaryDirectory() as tmp:
        target_path = Path(tmp) / "model.int8.onnx"
        quantize_static(
            graph,
            target_path,
            TileReader(tiles, graph.graph.input[0].name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method=METHODS[method],
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                "CalibStridedMinMax": pass_size(len(tiles)),  # calibrate in passes (any method)
                # TensorRT dequantizes INT8/FP8/INT4 only: an INT32 bias DequantizeLinear fails its parser
                "QuantizeBias": target != "tensorrt",
            },
        )
        quantized = onnx.load(str(target_path))
        flush_denormals(quantized)  # scales and float weights left denormal by BatchNorm folding
        write_bytes(out_path, quantized.SerializeToString())
    return settings
