"""FP32 graph edits made before quantizing for ONNX Runtime CPU (values unchanged, layers picked).

Measured on the width-0.25 U-Net, ORT 1.32 CPU, AVX2 without VNNI (ORT profiler, batch 4 of 256²
tiles): INT8 QLinearConv with < 16 output channels (the full-resolution level: 1→8, 8→8, 16→8)
ran 1.3–2.2× *slower* than FP32's NCHWc Conv, while the deeper levels ran 2–3× faster. The
Softmax → Sigmoid head rewrite lives in :mod:`export.graph_rewrites` (export applies it to every file).
"""

from __future__ import annotations

import onnx

from fundus_vessels.calib.onnx_graph import node_attr
from fundus_vessels.calib.onnx_graph import producers as graph_producers

# INT8 convolutions with fewer output channels than this lose to FP32 on ORT CPU
MIN_INT8_CHANNELS = 16
CONVS = ("Conv", "ConvTranspose")


def narrow_nodes(model: onnx.ModelProto, min_channels: int = MIN_INT8_CHANNELS) -> list[str]:
    """Names of the nodes to keep FP32: narrow convolutions and the ops only they feed or read.

    A Conv/ConvTranspose with < ``min_channels`` outputs stays float; so does every other op whose
    data input comes from a float node (its LeakyReLU, the MaxPool after it) or whose consumers are
    all float (what feeds only the narrow last decoder), so no Q→DQ pair sits between two float ops.
    """
    inits = {t.name: t for t in model.graph.initializer}
    producers = graph_producers(model.graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    keep: set[str] = set()
    for node in model.graph.node:
        if node.op_type in CONVS and len(node.input) > 1 and node.input[1] in inits:
            dims = list(inits[node.input[1]].dims)
            outputs = dims[0] if node.op_type == "Conv" else dims[1] * max(1, node_attr(node, "group", 1))
            if outputs < min_channels:
                keep.add(node.name)
    for node in model.graph.node:  # nodes are topologically sorted: follow float data forward
        producer = producers.get(node.input[0]) if node.input else None
        if node.op_type not in CONVS and producer is not None and producer.name in keep:
            keep.add(node.name)
    for node in reversed(model.graph.node):  # and backward from float consumers
        users = [c for out in node.output for c in consumers.get(out, [])]
        if node.op_type not in CONVS and users and all(c.name in keep for c in users):
            keep.add(node.name)
    return [node.name for node in model.graph.node if node.name in keep]


def split_conv_parts(add: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The convolutions summed by ``add`` and by the Adds feeding it (a split ``Conv(Concat)``), and those Adds."""
    found, pending = [], list(add.input)
    while pending:
        node = producers.get(pending.pop())
        if node is not None and node.op_type == "Add":
            found.append(node)
            pending.extend(node.input)
        elif node is not None and node.op_type == "Conv":
            found.append(node)
    return found if any(node.op_type == "Conv" for node in found) else []


def tensorrt_float_nodes(model: onnx.ModelProto, tail_convs: int = 3) -> list[str]:
    """Nodes the TensorRT INT8 file keeps float (TensorRT runs them in FP16/FP32): the graph's ends.

    * every Conv that reads a graph input: the input is an 8-bit CLAHE plane scaled to [-1, 1]
      (255 levels, step 2/255), which symmetric INT8 (step 1/127) would halve;
    * the last ``tail_convs`` convolutions before the output and the ops between them (the
      2-class head and the conv + LeakyReLU that feed it, so the head's input is not quantized
      either), and the output op: the logit difference there decides the mask at p = 0.5.

    Measured on the shipped width-0.25 U-Net (64 calibration tiles, entropy, 16 held-out tiles):
    head + Softmax float only 98.54 % mask agreement (minmax; 98.58 % entropy); + first conv 99.53 %; + last decoder
    conv/LeakyReLU 99.60 % (gate 99.5 %), but only 99.49 % with 256 tiles; the whole last decoder
    block float (``tail_convs=3``) passes at both (99.66 % / 99.54 %), so that margin ships.
    """
    graph_inputs = {i.name for i in model.graph.input}
    producers = graph_producers(model.graph)
    keep = {n.name for n in model.graph.node if n.op_type in CONVS and n.input and n.input[0] in graph_inputs}
    for output in model.graph.output:
        node, convs = producers.get(output.name), 0
        while node is not None and convs < tail_convs:
            keep.add(node.name)
            if node.op_type == "Add":  # a decoder's Conv(Concat) split by export: its parts are one conv
                parts = split_conv_parts(node, producers)
                keep.update(part.name for part in parts)
                convs += bool(parts)
                break
            convs += node.op_type in CONVS
            if node.op_type == "Concat" or not node.input:
                break
            node = producers.get(node.input[0])
    return [node.name for node in model.graph.node if node.name in keep]
