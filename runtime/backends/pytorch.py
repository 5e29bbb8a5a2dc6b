"""PyTorch eager backend: the reference the exported models are held to (imports torch lazily).

It needs the training checkpoint, which a bundle does not ship: pass ``checkpoint=`` (CLI
``--checkpoint``), or put the file ``model.json`` names (``"source_checkpoint"``) into the bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from runtime.backends.base import BackendError, require_precision
from runtime.bundle import Bundle, BundleError
from runtime.preprocess import PreprocessConfig


def find_checkpoint(bundle: Bundle, checkpoint: str | os.PathLike | None = None) -> Path:
    """The checkpoint to run: the given path, else the bundle's copy of its ``source_checkpoint``."""
    candidate = Path(checkpoint or bundle.meta.get("source_checkpoint", "checkpoint.pt"))
    if checkpoint is None and not candidate.is_absolute():
        candidate = bundle.root / candidate
    if not candidate.is_file():
        raise BackendError(f"torch backend needs a training checkpoint: {candidate} not found (use --checkpoint)")
    return candidate


class TorchBackend:
    """Runs the training checkpoint's model in eval mode; softmax over classes like the ONNX graph."""

    name = "torch"

    def __init__(
        self,
        bundle: Bundle,
        precision: str = "fp32",
        threads: int | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        require_precision(self.name, precision, ("fp32",))
        import torch

        from train.checkpoint import load_model

        self.precision = precision
        self.model_path = find_checkpoint(bundle, checkpoint)
        self.vessel_index = bundle.vessel_index
        if threads:
            torch.set_num_threads(int(threads))
        self.model, ckpt = load_model(self.model_path)
        if PreprocessConfig.from_dict(ckpt["preprocess"]) != bundle.preprocess:
            raise BundleError(f"{self.model_path}: preprocessing differs from {bundle.root}/model.json")
        self._torch = torch

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)))
            return torch.softmax(logits, dim=1)[:, self.vessel_index].numpy().astype(np.float32, copy=False)
