"""Model zoo: the paper's U-Net (ReLU or Leaky ReLU, any width) and an FCN-8s baseline."""

from __future__ import annotations

from torch import nn

from fundus_vessels.train.models.fcn import FCN8s
from fundus_vessels.train.models.unet import UNet

MODELS: dict[str, type[nn.Module]] = {"unet": UNet, "fcn": FCN8s}


def build_model(spec: dict) -> nn.Module:
    """Build a model from ``{"name": ..., "kwargs": {...}}`` (the form stored in checkpoints)."""
    name = spec["name"]
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**spec.get("kwargs", {}))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
