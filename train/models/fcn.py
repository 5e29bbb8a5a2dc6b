"""FCN-8s baseline (Long et al.): a plain conv encoder with score fusion at 1/8, 1/16, 1/32."""

from __future__ import annotations

import torch
from torch import nn

from fundus_vessels.train.models.layers import ConvBlock, scaled_widths

FCN_WIDTHS = (32, 64, 128, 256, 512)


class FCN8s(nn.Module):
    """FCN-8s on a VGG-style encoder with the U-Net's widths; returns logits (N, classes, H, W).

    Args:
        in_channels: input planes.
        num_classes: output classes.
        activation: ``"relu"`` or ``"leaky_relu"``.
        width: multiplier on the encoder widths.

    Input height and width must be multiples of 32.
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 2, activation: str = "relu", width: float = 1.0
    ) -> None:
        super().__init__()
        w = scaled_widths(FCN_WIDTHS, width)
        convs = (2, 2, 3, 3, 3)
        self.stages = nn.ModuleList()
        prev = in_channels
        for c, n in zip(w, convs, strict=True):
            self.stages.append(nn.Sequential(ConvBlock(prev, c, activation, convs=n), nn.MaxPool2d(2)))
            prev = c
        self.score5 = nn.Conv2d(w[4], num_classes, 1)
        self.score4 = nn.Conv2d(w[3], num_classes, 1)
        self.score3 = nn.Conv2d(w[2], num_classes, 1)
        self.up5 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p3, p4, p5 = feats[2], feats[3], feats[4]
        s = self.up5(self.score5(p5)) + self.score4(p4)
        s = self.up4(s) + self.score3(p3)
        return self.up8(s)
