"""``fundus-export``: one stage per subcommand (onnx, fp16, build-engine, parity, record-metrics, triton, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.bundle import BundleError
from fundus_vessels.runtime.cli_common import add_output_argument, add_subcommand, new_parser
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import run_with_extra


def cmd_onnx(args: argparse.Namespace) -> int:
    from fundus_vessels.export.onnx_export import export_bundle

    root = export_bundle(args.checkpoint, args.out, static=not args.no_static, name=args.name)
    print(f"wrote {root}/model.json, model.onnx" + ("" if args.no_static else ", model.static.onnx"))
    return ExitStatus.OK


def cmd_fp16(args: argparse.Namespace) -> int:
    from fundus_vessels.export.fp16 import add_fp16

    print(f"wrote {add_fp16(args.bundle)}")
    return ExitStatus.OK


def cmd_build_engine(args: argparse.Namespace) -> int:
    from fundus_vessels.export.engine import build_engine

    path = build_engine(args.bundle, args.precision, args.max_batch, args.workspace, force=args.force)
    print(f"engine {path}")
    return ExitStatus.OK


def cmd_parity(args: argparse.Namespace) -> int:
    from fundus_vessels.export.parity import PARITY_JSON, format_table, run_parity

    report = run_parity(args.bundle, args.checkpoint, args.data_root, args.images, args.batch)
    print(format_table(report))
    print(f"{'PASS' if report.passed else 'FAIL'}: wrote {Path(args.bundle) / PARITY_JSON}")
    return ExitStatus.OK if report.passed else ExitStatus.FAILED


def cmd_dynamic(args: argparse.Namespace) -> int:
    from fundus_vessels.export.onnx_export import write_dynamic_variant
    from fundus_vessels.runtime.bundle import load_bundle

    path = write_dynamic_variant(load_bundle(args.bundle), args.whole_image)
    print(f"wrote {path}" + ("" if args.whole_image is None else f"; tiling.whole_image = {args.whole_image}"))
    return ExitStatus.OK


def cmd_record_metrics(args: argparse.Namespace) -> int:
    import json

    from fundus_vessels.runtime.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    metrics = json.loads(Path(args.metrics).read_text())
    bundle.meta.setdefault("metrics", {})[args.name] = {
        "protocol": metrics["protocol"],
        "images": len(metrics["images"]),
        "fov_pooled": metrics["fov"]["pooled"],
        "fov_per_image_mean": metrics["fov"]["per_image_mean"],
        "whole_image_pooled": metrics["whole_image"]["pooled"],
        "command": args.command_line or "",
    }
    bundle.save()
    print(f"recorded {args.name} in {Path(args.bundle) / 'model.json'}")
    return ExitStatus.OK


def cmd_selftest_reference(args: argparse.Namespace) -> int:
    from fundus_vessels.export.selftest_reference import write_reference

    write_reference(args.bundle, args.threads)
    return ExitStatus.OK


def cmd_triton(args: argparse.Namespace) -> int:
    def run() -> int:
        from fundus_vessels.export.triton import ServingOptions, export_repository

        options = ServingOptions(args.max_batch, args.queue_delay_us, args.instances, args.onnx_kind)
        for config in export_repository(args.bundle, args.out, options, args.python_model):
            print(f"wrote {config.parent}")
        return ExitStatus.OK

    return run_with_extra("fundus-export triton", "triton", run)


EXAMPLES = [
    "fundus-export onnx --checkpoint runs/x/best.pt -o models/NAME",
    "fundus-export fp16 --bundle models/NAME",
    "fundus-export parity --bundle models/NAME --checkpoint runs/x/best.pt --data-root ../shared/data --images 20",
    "fundus-export build-engine --bundle models/NAME --precision fp16    # on the device",
    "fundus-export triton --bundle models/NAME -o REPO",
]
EXIT_CODES = {
    ExitStatus.OK: "done (parity: every backend within tolerance)",
    ExitStatus.FAILED: "parity: some backend outside its tolerance",
    ExitStatus.USAGE: "usage, bundle or export error, or the 'export' / 'triton' extra missing",
}
STAGE_EXIT_CODES = {ExitStatus.OK: "done", ExitStatus.USAGE: "usage, bundle or export error, or a missing extra"}


def add_stage(sub, name: str, help: str, examples: list[str], exit_codes: dict[int, str] = STAGE_EXIT_CODES):
    """One subcommand that follows the convention (``fundus-export NAME --help`` has its examples)."""
    return add_subcommand(sub, "fundus-export", name, help, examples, exit_codes)


def get_args_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "fundus-export", "Build and check model bundles, one stage per subcommand.", EXAMPLES, EXIT_CODES
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="STAGE",
        help="the stage to run (fundus-export STAGE --help: its options)",
    )

    p = add_stage(
        sub,
        "onnx",
        "checkpoint → bundle (model.onnx, model.static.onnx, model.json)",
        ["--checkpoint runs/x/best.pt -o models/NAME"],
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint (best.pt)")
    add_output_argument(p, "bundle folder, e.g. models/unet-drive", dest="out", metavar="BUNDLE")
    p.add_argument("--name", help="bundle name in model.json (default: the folder's name)")
    p.add_argument("--no-static", action="store_true", help="skip the fixed-shape OpenCV DNN variant")
    p.set_defaults(func=cmd_onnx)

    p = add_stage(sub, "fp16", "add model.fp16.onnx (FP32 I/O, Softmax in FP32)", ["--bundle models/NAME"])
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder")
    p.set_defaults(func=cmd_fp16)

    p = add_stage(
        sub, "build-engine", "build/cache a TensorRT engine for this GPU", ["--bundle models/NAME --precision int8"]
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (the engine is cached in BUNDLE/engines)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="engine precision")
    p.add_argument("--max-batch", type=int, default=8, metavar="N", help="largest batch of the optimisation profile")
    p.add_argument("--workspace", type=int, default=1024, metavar="MB", help="builder workspace in MB")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached engine is current")
    p.set_defaults(func=cmd_build_engine)

    p = add_stage(
        sub,
        "parity",
        "every backend vs PyTorch FP32; writes parity.json",
        ["--bundle models/NAME --checkpoint runs/x/best.pt --data-root ../shared/data --images 20"],
        {
            ExitStatus.OK: "every backend within tolerance",
            ExitStatus.FAILED: "some backend outside tolerance",
            ExitStatus.USAGE: "usage or bundle error",
        },
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder")
    p.add_argument("--checkpoint", required=True, type=Path, help="the checkpoint the bundle was exported from")
    p.add_argument("--data-root", type=Path, help="folder with DRIVE/ (default: synthetic planes, no labels)")
    p.add_argument("--images", type=int, default=2, metavar="N", help="DRIVE test images to use")
    p.add_argument("--batch", type=int, default=8, metavar="N", help="tiles per model call")
    p.set_defaults(func=cmd_parity)

    p = add_stage(
        sub,
        "dynamic",
        "add model.dynamic.onnx (model.onnx, any height and width) for whole-image passes on the CPU",
        ["--bundle models/NAME --whole-image 1024"],
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder")
    p.add_argument(
        "--whole-image",
        type=int,
        metavar="PX",
        help="also set model.json tiling.whole_image: planes up to PX run in one pass (0: tiles; default: unchanged)",
    )
    p.set_defaults(func=cmd_dynamic)

    p = add_stage(
        sub,
        "record-metrics",
        "copy a train.evaluate metrics.json into model.json",
        ["--bundle models/NAME --metrics out/metrics.json --name drive_test"],
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder")
    p.add_argument(
        "--metrics", required=True, type=Path, help="metrics.json written by python -m fundus_vessels.train.evaluate"
    )
    p.add_argument("--name", required=True, help="key under model.json metrics, e.g. drive_test")
    p.add_argument("--command-line", help="the command that produced the metrics, kept with them (default: none)")
    p.set_defaults(func=cmd_record_metrics)

    p = add_stage(
        sub,
        "selftest-reference",
        "ONNX Runtime CPU FP32 outputs the C++ --self-test is held to",
        ["--bundle models/NAME"],
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder (writes BUNDLE/selftest/)")
    p.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads (default: all)")
    p.set_defaults(func=cmd_selftest_reference)

    p = add_stage(
        sub,
        "triton",
        "Triton model repository: onnxruntime_onnx model, tensorrt_plan per engine",
        ["--bundle models/NAME -o REPO --python-model"],
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder")
    add_output_argument(p, "model repository folder (models of this bundle replaced)", dest="out", metavar="REPO")
    p.add_argument(
        "--max-batch", type=int, default=8, metavar="N", help="max_batch_size (TensorRT: at most the engine profile's)"
    )
    p.add_argument(
        "--queue-delay-us",
        type=int,
        default=2000,
        metavar="US",
        help="dynamic batching: longest wait for a fuller batch",
    )
    p.add_argument("--instances", type=int, default=1, metavar="N", help="model instances (instance_group count)")
    p.add_argument("--onnx-kind", choices=("gpu", "cpu"), default="gpu", help="where the ONNX model's instances run")
    p.add_argument("--python-model", action="store_true", help="also <name>_python: ONNX Runtime in the Python backend")
    p.set_defaults(func=cmd_triton)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)

    def run() -> int:
        try:
            return args.func(args)
        except (ExportError, BundleError, FileNotFoundError, ValueError) as exc:
            print(f"fundus-export {args.command}: {exc}", file=sys.stderr)
            return ExitStatus.USAGE

    return run_with_extra("fundus-export", "export", run)


if __name__ == "__main__":
    sys.exit(main())
