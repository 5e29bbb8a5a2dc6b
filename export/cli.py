"""``fundus-export``: one stage per subcommand (onnx, fp16, build-engine, parity, record-metrics, triton, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fundus_vessels.export.errors import ExportError
from fundus_vessels.runtime.bundle import BundleError
from fundus_vessels.runtime.extras import run_with_extra


def cmd_onnx(args: argparse.Namespace) -> int:
    from fundus_vessels.export.onnx_export import export_bundle

    root = export_bundle(args.checkpoint, args.out, static=not args.no_static, name=args.name)
    print(f"wrote {root}/model.json, model.onnx" + ("" if args.no_static else ", model.static.onnx"))
    return 0


def cmd_fp16(args: argparse.Namespace) -> int:
    from fundus_vessels.export.fp16 import add_fp16

    print(f"wrote {add_fp16(args.bundle)}")
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from fundus_vessels.export.engine import build_engine

    path = build_engine(args.bundle, args.precision, args.max_batch, args.workspace, force=args.force)
    print(f"engine {path}")
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from fundus_vessels.export.parity import PARITY_JSON, format_table, run_parity

    report = run_parity(args.bundle, args.checkpoint, args.data_root, args.images, args.batch)
    print(format_table(report))
    print(f"{'PASS' if report['pass'] else 'FAIL'}: wrote {Path(args.bundle) / PARITY_JSON}")
    return 0 if report["pass"] else 1


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
    return 0


def cmd_selftest_reference(args: argparse.Namespace) -> int:
    from fundus_vessels.export.selftest_reference import write_reference

    write_reference(args.bundle, args.threads)
    return 0


def cmd_triton(args: argparse.Namespace) -> int:
    def run() -> int:
        from fundus_vessels.export.triton import ServingOptions, export_repository

        options = ServingOptions(args.max_batch, args.queue_delay_us, args.instances, args.onnx_kind)
        for config in export_repository(args.bundle, args.out, options, args.python_model):
            print(f"wrote {config.parent}")
        return 0

    return run_with_extra("fundus-export triton", "triton", run)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fundus-export", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("onnx", help="checkpoint → bundle (model.onnx, model.static.onnx, model.json)")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="bundle folder, e.g. models/unet-drive")
    p.add_argument("--name", help="bundle name in model.json (default: folder name)")
    p.add_argument("--no-static", action="store_true", help="skip the fixed-shape OpenCV DNN variant")
    p.set_defaults(func=cmd_onnx)

    p = sub.add_parser("fp16", help="add model.fp16.onnx (FP32 I/O, Softmax in FP32)")
    p.add_argument("--bundle", required=True, type=Path)
    p.set_defaults(func=cmd_fp16)

    p = sub.add_parser("build-engine", help="build/cache a TensorRT engine for this GPU")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--workspace", type=int, default=1024, help="builder workspace in MB")
    p.add_argument("--force", action="store_true", help="rebuild even if the cached engine is current")
    p.set_defaults(func=cmd_build_engine)

    p = sub.add_parser("parity", help="every backend vs PyTorch FP32; writes parity.json")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--data-root", type=Path, help="folder with DRIVE/ (default: synthetic planes, no labels)")
    p.add_argument("--images", type=int, default=2, help="DRIVE test images to use")
    p.add_argument("--batch", type=int, default=8)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("record-metrics", help="copy a train.evaluate metrics.json into model.json")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument(
        "--metrics", required=True, type=Path, help="metrics.json written by python -m fundus_vessels.train.evaluate"
    )
    p.add_argument("--name", required=True, help="key under model.json metrics, e.g. drive_test")
    p.add_argument("--command-line", help="the command that produced the metrics, kept with them")
    p.set_defaults(func=cmd_record_metrics)

    p = sub.add_parser("selftest-reference", help="ONNX Runtime CPU FP32 outputs the C++ --self-test is held to")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: all)")
    p.set_defaults(func=cmd_selftest_reference)

    p = sub.add_parser("triton", help="Triton model repository: onnxruntime_onnx model, tensorrt_plan per engine")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="model repository folder (models of this bundle replaced)")
    p.add_argument("--max-batch", type=int, default=8, help="max_batch_size (TensorRT: at most the engine profile's)")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batching: longest wait for a fuller batch")
    p.add_argument("--instances", type=int, default=1, help="model instances (instance_group count)")
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
            return 2

    return run_with_extra("fundus-export", "export", run)


if __name__ == "__main__":
    sys.exit(main())
