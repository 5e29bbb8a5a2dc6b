"""Building blocks shared by the models: conv–BN–activation stacks."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "leaky_relu")


def make_activation(name: str) -> nn.Module:
    """``relu`` or ``leaky_relu`` (negative slope 0.01, as the paper)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


class ConvBlock(nn.Sequential):
    """``convs`` × (3×3 conv → BatchNorm → activation)."""

    def __init__(self, in_ch: int, out_ch: int, activation: str, convs: int = 2) -> None:
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [
                nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                make_activation(activation),
            ]
        super().__init__(*layers)


def scaled_widths(base: tuple[int, ...], width: float) -> list[int]:
    """Channel widths multiplied by ``width`` (at least 4 channels each)."""
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width}")
    return [max(4, round(c * width)) for c in base]
