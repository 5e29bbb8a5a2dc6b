"""Triton Python-backend model: the bundle's ``model.onnx`` run by onnxruntime inside the server.

Copied by ``fundus-export triton --python-model`` to ``REPO/<name>_python/1/model.py``, beside
``model.onnx``. Triton's Python backend imports it (``triton_python_backend_utils`` comes with
the server); it runs on the server's CPU, one onnxruntime session per model instance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Tiles in, class probabilities out, with the names and types of ``config.pbtxt``."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def execute(self, requests: list) -> list:
        """One onnxruntime call per request (each holds up to ``max_batch_size`` tiles).

        Tensors cross the stub through DLPack, not ``as_numpy()`` / ``Tensor(name, array)``: the
        stub of Triton 2.51 (nvidia-pytriton 0.7) was built against NumPy 1 and, beside NumPy 2,
        reads wrong input values and sends empty outputs that way. DLPack shares memory, which the
        stub copies out after ``execute`` returns, so the output arrays live until the next call.
        """
        responses, arrays = [], []
        for request in requests:
            tiles = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, self.input_name))
            feed = {self.input_name: np.ascontiguousarray(tiles, dtype=np.float32)}
            (probabilities,) = self.session.run([self.output_name], feed)
            arrays.append(probabilities)
            output = pb_utils.Tensor.from_dlpack(self.output_name, probabilities.__dlpack__())
            responses.append(pb_utils.InferenceResponse([output]))
        self.in_flight = arrays
        return responses
