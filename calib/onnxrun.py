"""ONNX Runtime CPU sessions and the tile predictor the calibration, report and parity share."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from runtime.inference import TilePredictor


def ort_session(
    path: str | os.PathLike, threads: int = 0, optimized_path: str | os.PathLike | None = None
) -> ort.InferenceSession:
    """A CPU session; ``threads`` > 0 fixes intra-op threads (for fair timings), 0 lets ORT choose.

    ``optimized_path`` saves the graph after ORT's fusions (to see e.g. QLinearConv).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_predictor(session: ort.InferenceSession, vessel_index: int = 1) -> TilePredictor:
    """(n, 1, t, t) float32 → (n, t, t) vessel probability through ``session``."""
    name = session.get_inputs()[0].name

    def predict(tiles: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(tiles, dtype=np.float32)})[0][:, vessel_index]

    return predict
