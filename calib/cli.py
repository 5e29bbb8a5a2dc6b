"""``fundus-calib`` (``python -m fundus_vessels.calib``): INT8 files for a bundle, one mode per subcommand.

``fundus-calib build`` builds ``model.int8.onnx`` and ``model.int8cpu.onnx`` from real tiles; ``fundus-calib report``
measures them. ``fundus-calib --bundle ...`` with no subcommand, the form from before the subcommands, is ``build``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fundus_vessels.calib.check import CalibrationError
from fundus_vessels.calib.targets import DEFAULT_METHODS, METHOD_NAMES, TARGET_PRECISION, TARGETS
from fundus_vessels.runtime.bundle import BundleError, load_bundle
from fundus_vessels.runtime.cli_common import VersionAction, add_subcommand, new_parser
from fundus_vessels.runtime.datasets import DATASETS
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import run_with_extra


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


PROG = "fundus-calib"
BUILD, REPORT = "build", "report"
# what the top-level parser answers itself; anything else first (an option of build, or nothing at all) means build
TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")
EXAMPLES = [
    "fundus-calib build --bundle models/NAME --data drive,chase --data-root ../shared/data   # both INT8 files",
    "fundus-calib report --bundle models/NAME --data-root ../shared/data   # INT8 vs FP32, DRIVE test",
    "fundus-calib --bundle models/NAME --data drive,chase --data-root ../shared/data   # no subcommand: build",
]
EXIT_CODES = {
    ExitStatus.OK: "written (report: every target met)",
    ExitStatus.FAILED: "report: some target not met",
    ExitStatus.USAGE: (
        "usage, bundle or calibration error (a target failed its accuracy gate), or the 'calib' extra missing"
    ),
}
BUILD_EXIT_CODES = {
    ExitStatus.OK: "written",
    ExitStatus.USAGE: EXIT_CODES[ExitStatus.USAGE],
}
REPORT_EXIT_CODES = {
    ExitStatus.OK: "every target met",
    ExitStatus.FAILED: "some target not met",
    ExitStatus.USAGE: "usage or bundle error, or the 'calib' extra missing",
}


def add_command(sub, name: str, help: str, examples: list[str], exit_codes: dict[int, str]) -> argparse.ArgumentParser:
    """One subcommand that follows the convention (``fundus-calib NAME --help`` has its examples).

    Unlike ``fundus-export``'s stages, each has ``--version`` too: ``fundus-calib --bundle B --version`` and
    ``fundus-calib report --version`` printed the versions before the subcommands, and still do.
    """
    parser = add_subcommand(sub, PROG, name, help, examples, exit_codes)
    parser.add_argument("--version", action=VersionAction)
    return parser


def get_args_parser() -> argparse.ArgumentParser:
    """``fundus-calib``: the ``build`` and ``report`` subcommands (:func:`parse_args` adds the bare form)."""
    parser = new_parser(
        PROG,
        "Add INT8 files to a bundle (build) or measure them against FP32 (report). "
        "With no subcommand, fundus-calib --bundle ... runs build.",
        EXAMPLES,
        EXIT_CODES,
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="the subcommand to run (fundus-calib COMMAND --help: its options; none given: build)",
    )

    p = add_command(
        sub,
        BUILD,
        "calibrate and add model.int8.onnx (TensorRT) and model.int8cpu.onnx (ONNX Runtime CPU); "
        "the default: fundus-calib --bundle ... runs it",
        ["--bundle models/NAME --data drive,chase --data-root ../shared/data   # both INT8 files"],
        BUILD_EXIT_CODES,
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder the INT8 files are added to")
    p.add_argument("--data", default="drive", help="comma list of " + ", ".join(DATASETS))
    p.add_argument("--data-root", required=True, type=Path, help="folder with DRIVE/ and CHASEDB1/")
    p.add_argument("--tiles", type=int, default=64, metavar="N", help="calibration tiles (held-out check: a quarter)")
    p.add_argument(
        "--method",
        choices=METHOD_NAMES,
        default=None,
        help="calibration method (default: " + ", ".join(f"{m} for {t}" for t, m in DEFAULT_METHODS.items()) + ")",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the tile draw")
    p.add_argument(
        "--target",
        choices=[*TARGETS, "both"],
        default="both",
        help="tensorrt: model.int8.onnx (symmetric INT8); cpu: model.int8cpu.onnx (UINT8 activations, ORT CPU)",
    )
    p.set_defaults(func=run_build)

    p = add_command(
        sub,
        REPORT,
        "INT8 vs FP32 on DRIVE test: scores, mask agreement, speed",
        ["--bundle models/NAME --data-root ../shared/data   # INT8 vs FP32, DRIVE test"],
        REPORT_EXIT_CODES,
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (writes BUNDLE/int8_report.json)")
    p.add_argument("--data-root", required=True, type=Path, help="folder with DRIVE/")
    p.add_argument("--images", type=int, default=20, metavar="N", help="DRIVE test images to use")
    p.add_argument(
        "--threads", type=int, default=0, metavar="N", help="intra-op threads for both models (0: all cores)"
    )
    p.add_argument(
        "--precision",
        choices=sorted(TARGET_PRECISION.values()),
        default=None,
        help="INT8 file to measure (default: int8_cpu when the bundle has it, else int8)",
    )
    p.set_defaults(func=run_report)
    return parser


def with_command(argv: list[str]) -> list[str]:
    """``argv`` with ``build`` put first when it names no subcommand (nor ``--help``/``--version``).

    ``fundus-calib --bundle ...`` is ``fundus-calib build --bundle ...``: the documented form from before the
    subcommands keeps working, with the same options, defaults and errors.
    """
    if argv and argv[0] in (BUILD, REPORT, *TOP_LEVEL_OPTIONS):
        return list(argv)
    return [BUILD, *argv]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by :func:`get_args_parser`, the bare form read as ``build``; argparse exits 2 on an error."""
    return get_args_parser().parse_args(with_command(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        try:
            return args.func(args)
        except (CalibrationError, BundleError, FileNotFoundError, ValueError) as exc:
            print(f"calib: {exc}", file=sys.stderr)
            return ExitStatus.USAGE

    return run_with_extra(PROG, "calib", run)


if __name__ == "__main__":
    sys.exit(main())
