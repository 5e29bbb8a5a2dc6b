"""Command-line options shared by fundus-measure and fundus-infer (no heavy imports here)."""

from __future__ import annotations

import argparse


def add_unit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--pixel-size-um`` or ``--camera-fov-deg`` (micrometre columns; docs/measure.md, units)."""
    units = parser.add_mutually_exclusive_group()
    units.add_argument(
        "--pixel-size-um",
        type=float,
        metavar="UM",
        help="micrometres per pixel (adds *_um columns; default: pixels only)",
    )
    units.add_argument(
        "--camera-fov-deg",
        type=float,
        metavar="DEG",
        help="camera angle of view spanning the FOV (288 µm per degree; default: none)",
    )


def add_infer_arguments(parser: argparse.ArgumentParser) -> None:
    """fundus-infer's ``--measure`` and the unit options."""
    parser.add_argument(
        "--measure", action="store_true", help="also measure the vessel maps (fundus-measure's tables, in OUTDIR)"
    )
    parser.add_argument(
        "--measure-over-photo",
        action="store_true",
        help="draw <stem>_measure.png over the darkened photograph instead of the gray vessel map",
    )
    add_unit_arguments(parser)
