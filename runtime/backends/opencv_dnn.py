"""OpenCV DNN backend: the static 1x1xTxT model (``model.static.onnx``), one tile per call."""

from __future__ import annotations

import cv2
import numpy as np

from fundus_vessels.runtime.backends.base import require_precision, vessel_channel
from fundus_vessels.runtime.bundle import Bundle, BundleError


class OpenCVBackend:
    """What the C++ runtime runs on a device without TensorRT (FP32 only: no FP16/QDQ in DNN)."""

    name = "opencv"
    any_size = True  # DNN re-infers the static graph's shapes from each input: whole-image passes

    def __init__(self, bundle: Bundle, precision: str = "fp32", threads: int | None = None) -> None:
        require_precision(self.name, precision, ("fp32",))
        self.precision = precision
        self.model_path = bundle.model_path("fp32_static")
        self.vessel_index = bundle.vessel_index
        if threads:
            cv2.setNumThreads(int(threads))
        try:
            self.net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            raise BundleError(f"{self.model_path}: OpenCV DNN cannot load it ({exc})") from exc

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        planes = []
        for tile in tiles:
            self.net.setInput(np.ascontiguousarray(tile[None], dtype=np.float32))
            planes.append(vessel_channel(self.net.forward(), self.vessel_index)[0])
        return np.stack(planes)
