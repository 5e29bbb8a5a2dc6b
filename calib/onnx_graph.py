"""Small ONNX graph queries and fixes shared by export's rewrites and calibration's node selection."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def node_attr(node: onnx.NodeProto, name: str, default: int) -> int:
    """Integer attribute ``name`` of ``node``, or ``default`` when absent."""
    for attribute in node.attribute:
        if attribute.name == name:
            return int(onnx.helper.get_attribute_value(attribute))
    return default


def use_counts(graph: onnx.GraphProto) -> dict[str, int]:
    """How many times each tensor is read: as a node input, or as a graph output."""
    users: dict[str, int] = {}
    for name in [*(n for node in graph.node for n in node.input), *(o.name for o in graph.output)]:
        users[name] = users.get(name, 0) + 1
    return users


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """The node that writes each tensor, by tensor name."""
    return {out: node for node in graph.node for out in node.output}


def denormal_count(model: onnx.ModelProto) -> int:
    """Non-zero float32 initializer values below the smallest normal float (denormals)."""
    return sum(int(np.count_nonzero(_denormal(numpy_helper.to_array(t)))) for t in _float_initializers(model))


def flush_denormals(model: onnx.ModelProto) -> int:
    """Set every denormal float32 initializer value to zero, in place; returns how many were flushed.

    BatchNorm folding leaves weights around 1e-40 where a channel was nearly dead. CPUs without
    flush-to-zero take a slow path on every multiply with them: ``unet-drive-chase`` (6 % denormal
    weights) ran 8.5x slower than ``unet-drive`` with the same architecture. Zero is what the
    arithmetic rounds such products to anyway, so the outputs stay the same.
    """
    flushed = 0
    for tensor in _float_initializers(model):
        values = numpy_helper.to_array(tensor).copy()
        tiny = _denormal(values)
        if tiny.any():
            flushed += int(np.count_nonzero(tiny))
            values[tiny] = 0.0
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return flushed


def _float_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]


def _denormal(values: np.ndarray) -> np.ndarray:
    return (values != 0) & (np.abs(values) < np.finfo(np.float32).tiny)
