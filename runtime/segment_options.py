"""The options that decide what a segmentation run reads and writes (``fundus-infer`` and ``fundus-batch``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fundus_vessels.runtime import imageio
from fundus_vessels.runtime.backends import BACKENDS, PRECISIONS
from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, DEFAULT_MODEL, bundle_path, shipped_names
from fundus_vessels.runtime.cli_common import add_output_argument
from fundus_vessels.runtime.inference import DEFAULT_BATCH
from fundus_vessels.runtime.measure.arguments import add_infer_arguments
from fundus_vessels.runtime.outputs import SAVE_KINDS
from fundus_vessels.runtime.quality import QUALITY_MODES
from fundus_vessels.runtime.scale import parse_scale


def probability(text: str) -> float:
    """argparse type: a finite number in [0, 1] (nan and inf refused), as the C++ --threshold."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1] (got {text!r})")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, as the C++ --threads and --batch."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def scale_arg(value: str) -> str | float:
    """``--scale``: auto, none or a factor (argparse type; the message names the flag)."""
    try:
        return parse_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--scale ")) from None


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that decide what a segmentation run reads and writes (fundus-infer and fundus-batch)."""
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders of images")
    add_output_argument(parser, "output folder: <stem>_mask.png, _prob.png, _overlay.png, summary.json")
    parser.add_argument(
        "--model",
        type=bundle_path,
        default=DEFAULT_BUNDLE,  # the shipped one, whatever folders the working directory holds
        metavar="BUNDLE",
        help=f"bundle folder, or the name of a shipped bundle ({', '.join(shipped_names())}; default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: a TensorRT engine built for this GPU if there is one, else ONNX Runtime on a GPU, "
        "else OpenCV DNN on the CPU (FP32; ONNX Runtime for other precisions)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="which model file of the bundle runs (fp16 is for GPUs)"
    )
    parser.add_argument(
        "--fov",
        default="auto",
        metavar="auto|none|MASK_FILE",
        help="field-of-view mask; tiles holding no FOV pixel are not run (probability 0 there)",
    )
    parser.add_argument(
        "--scale",
        type=scale_arg,
        default="auto",
        metavar="auto|none|FACTOR",
        help="resample so the FOV diameter matches the model's reference (auto), not at all (none), "
        "or by a fixed factor; outputs keep the input's size",
    )
    parser.add_argument(
        "--threshold", type=probability, metavar="T", help="vessel if probability >= T (default: model.json's)"
    )
    parser.add_argument(
        "--quality",
        choices=QUALITY_MODES,
        default="flag",
        help="image quality gate: flag (segment, record the verdict), refuse (no vessel map for a rejected image), off",
    )
    parser.add_argument(
        "--save",
        default=",".join(SAVE_KINDS),
        metavar="LIST",
        help="comma-separated outputs: mask, prob, overlay, dicom-seg",
    )
    parser.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, metavar="N", help="tiles per model call")
    parser.add_argument(
        "--threads", type=positive_int, metavar="N", help="inference threads (default: the library's, all cores)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="training checkpoint (torch backend only; default: none)"
    )
    parser.add_argument(
        "--url", help="Triton server, [grpc://|http://]host:port[/model] (triton backend only; default: none)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    parser.add_argument("--report", action="store_true", help="also write OUTDIR/report.html, self-contained")
    add_infer_arguments(parser)  # --measure, --pixel-size-um, --camera-fov-deg
    parser.add_argument("--keep-identifiers", action="store_true", help="DICOM patient/study IDs into summary.json")
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=imageio.DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse an image whose header declares more pixels, before decoding it (default: 100000000)",
    )
