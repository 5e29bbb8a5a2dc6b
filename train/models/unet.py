"""The paper's U-Net: 5 encoder blocks (32…512), BatchNorm, 4 decoder blocks, 1×1 head."""

from __future__ import annotations

import torch
from torch import nn

from fundus_vessels.train.models.layers import ConvBlock, scaled_widths

UNET_WIDTHS = (32, 64, 128, 256, 512)


class UNet(nn.Module):
    """Encoder–decoder with concatenated skips; returns logits (N, classes, H, W).

    Args:
        in_channels: input planes (1: the CLAHE-enhanced gray image).
        num_classes: output classes (2: background, vessel; softmax is applied outside).
        activation: ``"relu"`` (the original U-Net) or ``"leaky_relu"`` (the improved one).
        width: multiplier on the widths 32, 64, 128, 256, 512 (0.5 gives a compact edge model).

    Upsampling is a 2×2 transposed convolution: static shapes, so the ONNX graph has no Shape
    ops and loads in OpenCV DNN. Input height and width must be multiples of 16.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 2, activation: str = "leaky_relu", width: float = 1.0
    ) -> None:
        super().__init__()
        w = scaled_widths(UNET_WIDTHS, width)
        self.encoders = nn.ModuleList()
        prev = in_channels
        for c in w:
            self.encoders.append(ConvBlock(prev, c, activation))
            prev = c
        self.pool = nn.MaxPool2d(2)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for c in reversed(w[:-1]):
            self.upsamplers.append(nn.ConvTranspose2d(prev, c, kernel_size=2, stride=2))
            self.decoders.append(ConvBlock(2 * c, c, activation))
            prev = c
        self.head = nn.Conv2d(prev, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips[:-1]), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
