"""Small ONNX graph queries shared by export's rewrites and calibration's node selection."""

from __future__ import annotations

import onnx


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
