"""FP32 ONNX → static INT8 QDQ ONNX with ONNX Runtime's quantizer, as TensorRT wants it.

QDQ format (explicit precision: both ONNX Runtime and TensorRT's strongly typed builder read
the scales from the graph), per-channel symmetric INT8 weights, symmetric INT8 activations
(TensorRT supports only zero-point 0). The 1×1 head and the Softmax stay FP32: the head makes
the two logits whose *difference* decides the mask at p = 0.5, so INT8 steps there flip pixels
along every vessel edge, while the head is < 0.1 % of the compute.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from runtime.imageio import write_bytes

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
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
    producers = {out: node for node in graph.graph.node for out in node.output}
    keep = []
    for node in graph.graph.node:
        if node.op_type == "Softmax":
            keep.append(node.name)
            head = producers.get(node.input[0])
            if head is not None and head.op_type == "Conv":
                keep.append(head.name)
    return keep


def pass_size(count: int) -> int:
    """Largest divisor of ``count`` up to :data:`PASS_TILES` (the quantizer needs equal passes)."""
    return max(d for d in range(1, PASS_TILES + 1) if count % d == 0)


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike, tiles: np.ndarray, method: str) -> dict:
    """Write the QDQ INT8 model calibrated on ``tiles`` (n, 1, t, t); returns its settings."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {sorted(METHODS)}, got {method!r}")
    if len(tiles) == 0:
        raise ValueError("no calibration tiles")
    graph = onnx.load(str(fp32_path))
    excluded = float_nodes(graph)
    settings = {
        "format": "QDQ",
        "activations": "QInt8 symmetric",
        "weights": "QInt8 symmetric per-channel",
        "float_nodes": excluded,
    }
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.int8.onnx"
        quantize_static(
            graph,
            target,
            TileReader(tiles, graph.graph.input[0].name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method=METHODS[method],
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "CalibStridedMinMax": pass_size(len(tiles)),  # calibrate in passes (any method)
            },
        )
        write_bytes(out_path, target.read_bytes())
    return settings
