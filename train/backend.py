"""PyTorch eager backend: the reference the exported models are held to.

It lives with the torch code and reaches the runtime as a plug-in: ``pyproject.toml`` registers
:class:`TorchBackend` under the entry-point group ``fundus_vessels.backends``, which
:func:`fundus_vessels.runtime.backends.create_backend` looks up for ``--backend torch``; the runtime
itself never imports torch. It needs the training checkpoint, which a bundle does not ship: pass
``checkpoint=`` (CLI ``--checkpoint``), or put the file ``model.json`` names
(``"source_checkpoint"``) into the bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fundus_vessels.runtime.backends.base import BackendError, require_precision
from fundus_vessels.runtime.bundle import Bundle, BundleError
from fundus_vessels.runtime.inference import TilePredictor
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.train.checkpoint import load_model


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
        self.precision = precision
        self.model_path = find_checkpoint(bundle, checkpoint)
        self.vessel_index = bundle.vessel_index
        if threads:
            torch.set_num_threads(int(threads))
        self.model, ckpt = load_model(self.model_path)
        if PreprocessConfig.from_dict(ckpt["preprocess"]) != bundle.preprocess:
            raise BundleError(f"{self.model_path}: preprocessing differs from {bundle.root}/model.json")
        self.predict = torch_predictor(self.model, torch.device("cpu"), self.vessel_index)


def vessel_probability(model: nn.Module, x: torch.Tensor, vessel_index: int = 1) -> torch.Tensor:
    """Softmax over the classes of ``model(x)``, the vessel channel: (n, h, w) float32."""
    with torch.autocast(x.device.type, enabled=x.device.type == "cuda"):
        logits = model(x)
    return torch.softmax(logits.float(), dim=1)[:, vessel_index]


def torch_predictor(model: nn.Module, device: torch.device, vessel_index: int = 1) -> TilePredictor:
    """Wrap a model returning logits as a runtime tile predictor (numpy in, vessel probability out)."""

    @torch.inference_mode()
    def predict(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(device)
        return vessel_probability(model, x, vessel_index).cpu().numpy()

    return predict
