"""What every backend provides: ``predict(tiles (n,1,t,t) float32) -> (n,t,t) vessel probability``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class BackendError(RuntimeError):
    """A backend that cannot run here (library missing, no engine, unsupported precision)."""


class Backend(Protocol):
    """A tile predictor bound to one model file.

    Attributes:
        name: backend name as given on the command line (``ort``, ``opencv``, ``trt``, ``torch``).
        precision: ``fp32``, ``fp16`` or ``int8``.
        model_path: the file it runs (ONNX, engine or checkpoint).

    A backend whose ``predict`` also takes one (1, 1, H, W) plane of any size (H, W multiples of 16)
    sets ``any_size = True``; the pipeline then runs small planes whole (``model.json`` ``tiling.whole_image``).
    """

    name: str
    precision: str
    model_path: Path

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """(n, 1, t, t) float32 model input -> (n, t, t) float32 vessel probability."""
        ...


def vessel_channel(probabilities: np.ndarray, vessel_index: int) -> np.ndarray:
    """The vessel plane of a (n, classes, t, t) softmax output, as contiguous float32."""
    if probabilities.ndim != 4:
        raise BackendError(f"model output has shape {probabilities.shape}, expected (n, classes, h, w)")
    return np.ascontiguousarray(probabilities[:, vessel_index], dtype=np.float32)


def require_precision(backend: str, precision: str, supported: tuple[str, ...]) -> None:
    """Raise :class:`BackendError` if ``backend`` cannot run ``precision``."""
    if precision not in supported:
        raise BackendError(f"backend {backend!r} runs {', '.join(supported)} only, not {precision!r}")
