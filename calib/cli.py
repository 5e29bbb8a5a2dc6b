"""``fundus-calib`` (``python -m fundus_vessels.calib``): build ``model.int8.onnx`` from real tiles.

``fundus-calib report`` measures it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fundus_vessels.calib.check import CalibrationError
from fundus_vessels.calib.targets import DEFAULT_METHODS, METHOD_NAMES, TARGET_PRECISION, TARGETS
from fundus_vessels.runtime.bundle import BundleError, load_bundle
from fundus_vessels.runtime.cli_common import new_parser
from fundus_vessels.runtime.datasets import DATASETS
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import run_with_extra

PROG = "fundus-calib"
EXAMPLES = [
    "fundus-calib --bundle models/NAME --data drive,chase --data-root ../shared/data   # both INT8 files",
    "fundus-calib report --bundle models/NAME --data-root ../shared/data               # INT8 vs FP32, DRIVE test",
]
EXIT_CODES = {
    ExitStatus.OK: "written (report: every target met)",
    ExitStatus.FAILED: "report: some target not met",
    ExitStatus.USAGE: (
        "usage, bundle or calibration error (a target failed its accuracy gate), or the 'calib' extra missing"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        PROG,
        "Calibrate and add model.int8.onnx (TensorRT) and model.int8cpu.onnx (ONNX Runtime CPU).",
        EXAMPLES,
        EXIT_CODES,
    )
    parser.add_argument("--bundle", required=True, type=Path, help="bundle folder the INT8 files are added to")
    parser.add_argument("--data", default="drive", help="comma list of " + ", ".join(DATASETS))
    parser.add_argument("--data-root", required=True, type=Path, help="folder with DRIVE/ and CHASEDB1/")
    parser.add_argument(
        "--tiles", type=int, default=64, metavar="N", help="calibration tiles (held-out check: a quarter)"
    )
    parser.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default=None,
        help="calibration method (default: " + ", ".join(f"{m} for {t}" for t, m in DEFAULT_METHODS.items()) + ")",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the tile draw")
    parser.add_argument(
        "--target",
        choices=[*TARGETS, "both"],
        default="both",
        help="tensorrt: model.int8.onnx (symmetric INT8); cpu: model.int8cpu.onnx (UINT8 activations, ORT CPU)",
    )
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        f"{PROG} report", "INT8 vs FP32 on DRIVE test: scores, mask agreement, speed.", EXAMPLES[1:], EXIT_CODES
    )
    parser.add_argument("--bundle", required=True, type=Path, help="bundle folder (writes BUNDLE/int8_report.json)")
    parser.add_argument("--data-root", required=True, type=Path, help="folder with DRIVE/")
    parser.add_argument("--images", type=int, default=20, metavar="N", help="DRIVE test images to use")
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N", help="intra-op threads for both models (0: all cores)"
    )
    parser.add_argument(
        "--precision",
        choices=sorted(TARGET_PRECISION.values()),
        default=None,
        help="INT8 file to measure (default: int8_cpu when the bundle has it, else int8)",
    )
    return parser


def run_build(args: argparse.Namespace) -> int:
    from fundus_vessels.calib.build import add_int8
    from fundus_vessels.calib.tiles import calibration_sets

    datasets = [d.strip() for d in args.data.split(",") if d.strip()]
    bundle = load_bundle(args.bundle)
    calibration, heldout = calibration_sets(
        args.data_root, datasets, bundle.preprocess, bundle.tile, args.tiles, args.seed, bundle.scale
    )
    provenance = {"data": datasets, "split": "training", "seed": args.seed, "tile": bundle.tile}
    targets = list(TARGETS) if args.target == "both" else [args.target]
    failures = []
    for target in targets:
        try:
            method = args.method or DEFAULT_METHODS[target]
            path = add_int8(args.bundle, calibration, heldout, method, provenance, target=target)
        except CalibrationError as exc:
            if len(targets) == 1:
                raise
            failures.append(f"{target}: {exc}")
            continue
        check = load_bundle(args.bundle).meta["files"][TARGET_PRECISION[target]]["heldout_check"]
        agreement, diff = 100 * check["mask_agreement"], check["mean_abs_diff"]
        print(f"wrote {path} ({target}): held-out agreement {agreement:.3f}%, mean |Δp| {diff:.4f}")
    for failure in failures:
        print(f"calib: {failure}", file=sys.stderr)
    return ExitStatus.USAGE if failures else ExitStatus.OK


def run_report(args: argparse.Namespace) -> int:
    from fundus_vessels.calib.report import REPORT_JSON, int8_report

    report = int8_report(args.bundle, args.data_root, args.images, args.threads, args.precision)
    print(json.dumps({k: report[k] for k in ("scores", "delta_points", "mask_agreement", "meets_targets")}, indent=1))
    speedup = report["speed"]["speedup_int8_vs_fp32"]
    print(f"speedup {report['precision']}/FP32 (ORT CPU): {speedup:.2f}x; wrote {args.bundle / REPORT_JSON}")
    return ExitStatus.OK if all(report["meets_targets"].values()) else ExitStatus.FAILED


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    is_report = bool(argv) and argv[0] == "report"
    args = (report_parser() if is_report else build_parser()).parse_args(argv[1:] if is_report else argv)

    def run() -> int:
        try:
            return run_report(args) if is_report else run_build(args)
        except (CalibrationError, BundleError, FileNotFoundError, ValueError) as exc:
            print(f"calib: {exc}", file=sys.stderr)
            return ExitStatus.USAGE

    return run_with_extra("fundus-calib", "calib", run)


if __name__ == "__main__":
    sys.exit(main())
