"""Tile predictors for the references and backends parity compares (PyTorch, OpenCV DNN, TensorRT).

ONNX Runtime's lives in :mod:`calib.onnxrun` (calibration shares it).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from runtime.inference import TilePredictor


def torch_predictor(model: nn.Module, vessel_index: int = 1) -> TilePredictor:
    """The PyTorch FP32 reference: softmax of the network's logits, vessel channel."""
    model.eval()

    def predict(tiles: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(tiles)))
        return torch.softmax(logits, dim=1)[:, vessel_index].numpy()

    return predict


def opencv_predictor(path: str | os.PathLike, vessel_index: int = 1) -> TilePredictor:
    """OpenCV DNN on the fixed-shape model (batch 1, so tiles run one at a time)."""
    import cv2

    net = cv2.dnn.readNetFromONNX(str(path))

    def predict(tiles: np.ndarray) -> np.ndarray:
        out = []
        for tile in tiles:
            net.setInput(np.ascontiguousarray(tile[None], dtype=np.float32))
            out.append(net.forward()[0, vessel_index])
        return np.stack(out)

    return predict


def tensorrt_predictor(engine_path: str | os.PathLike, vessel_index: int = 1) -> TilePredictor:
    """A TensorRT engine run with CUDA tensors from torch (TensorRT 10/11 tensor-address API)."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with open(engine_path, "rb") as f:
        engine = runtime.deserialize_cuda_engine(f.read())
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    (input_name,) = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    (output_name,) = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    stream = torch.cuda.Stream()

    def predict(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).cuda()
        context.set_input_shape(input_name, tuple(x.shape))
        y = torch.empty(tuple(context.get_tensor_shape(output_name)), dtype=torch.float32, device="cuda")
        context.set_tensor_address(input_name, x.data_ptr())
        context.set_tensor_address(output_name, y.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{engine_path}: TensorRT execution failed")
        stream.synchronize()
        return y[:, vessel_index].cpu().numpy()

    return predict
