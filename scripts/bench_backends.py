"""Benchmark every backend on the same images: seconds per image, tiles/s, peak memory, GFLOP/s.

    python scripts/bench_backends.py --out bench.json [--model BUNDLE] [--data-root ROOT] [--checkpoint CKPT]

Each configuration runs in its own subprocess (``--worker``) so that its peak resident memory
(``VmHWM``; ``ru_maxrss`` for the C++ binary) is its own. Images: a DRIVE-size one (DRIVE test
01 if ``--data-root`` has it, else synthetic 584x565) and a synthetic 3504x2336 one. Times are
whole-pipeline (read excluded: preprocess → FOV → tiles → stitch → threshold). The machine's
speed drifts (a shared VM: the same run varied by 30 % within minutes), so the configurations take
turns: each of ``--rounds`` rounds runs every configuration once (a warm-up, then ``--repeats``
timed runs per image), and a configuration's time is the median of all its timed runs. Ratios are
against PyTorch eager. A development tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_image, write_image, write_json
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.runtime.tiling import make_grid, tiles_touching
from fundus_vessels.runtime.timing import timed_calls

REPO = Path(__file__).resolve().parent.parent  # a script of the checkout, not of the installed package
CPP_BINARY = REPO / "build" / "fundus-infer"
BIG_SHAPE = (2336, 3504)  # rows, columns of a 3504x2336 photograph


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 ``n x n`` numpy matmul rate: the machine's practical compute ceiling."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    best = min(timed_calls(lambda: a @ b, repeats, warmup=0))
    return 2.0 * n**3 / best / 1e9


def tile_gflop(bundle: Bundle) -> float | None:
    """GFLOP (2 x MACs of Conv/ConvTranspose) of one tile, from the static ONNX graph's shapes."""
    try:
        import onnx
        from onnx import numpy_helper, shape_inference
    except ImportError:
        return None
    key = "fp32_static" if bundle.has("fp32_static") else "fp32"
    graph = shape_inference.infer_shapes(onnx.load(bundle.model_path(key, verify=False))).graph
    values = (*graph.input, *graph.value_info, *graph.output)
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim] for v in values}
    weights = {w.name: numpy_helper.to_array(w).shape for w in graph.initializer}
    macs = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.input[1] not in weights:
            continue
        # every weight meets every output pixel (Conv) or every input pixel (ConvTranspose) once
        pixels = shapes.get(node.output[0] if node.op_type == "Conv" else node.input[0])
        if pixels is None:
            return None
        macs += int(np.prod(weights[node.input[1]])) * int(np.prod(pixels[2:]))
    return 2.0 * macs / 1e9


def prepare_images(folder: Path, data_root: Path | None) -> dict[str, Path]:
    """The DRIVE-size and the big image, as PNG files every configuration reads."""
    drive = data_root / "DRIVE" / "test" / "images" / "01_test.tif" if data_root else None
    small = folder / "drive_size.png"
    if drive is not None and drive.is_file():
        write_image(small, read_image(drive))
    else:
        write_image(small, make_synthetic_fundus(584, 565, seed=0).image_rgb)
    big = folder / "big.png"
    write_image(big, make_synthetic_fundus(*BIG_SHAPE, seed=1).image_rgb)
    return {"drive_size": small, "big": big}


def configurations(bundle: Bundle, checkpoint: Path | None) -> list[dict]:
    """Every backend/precision this bundle and machine can run (PyTorch eager first)."""
    configs = []
    if checkpoint is not None:
        configs.append({"name": "PyTorch eager", "backend": "torch", "precision": "fp32"})
    for precision, label in (("fp32", "ORT FP32"), ("fp16", "ORT FP16"), ("int8", "ORT INT8")):
        if bundle.has(precision):
            configs.append({"name": label, "backend": "ort", "precision": precision})
    if bundle.has("fp32_static"):
        configs.append({"name": "OpenCV DNN", "backend": "opencv", "precision": "fp32"})
    if CPP_BINARY.is_file():
        configs.append({"name": "C++ fundus-infer (OpenCV DNN)", "backend": "cpp", "precision": "fp32"})
    return configs


def _time_python(args: argparse.Namespace, images: list[Path]) -> dict[str, list[float]]:
    from fundus_vessels.runtime.pipeline import Segmenter

    segmenter = Segmenter(args.model, args.backend, args.precision, args.threads, checkpoint=args.checkpoint)
    seconds = {}
    for path in images:
        image = read_image(path)
        seconds[path.stem] = timed_calls(lambda image=image: segmenter.segment(image), args.repeats)
    return seconds


def _time_cpp(args: argparse.Namespace, images: list[Path]) -> dict[str, list[float]]:
    """Whole-process seconds of the C++ binary per image (includes loading the model)."""
    seconds = {}
    with tempfile.TemporaryDirectory() as out:
        command = [str(CPP_BINARY), "-o", out, "--model", str(args.model), "--backend", "opencv", "--quiet"]
        command += ["--threads", str(args.threads)] if args.threads else []
        for path in images:
            run = [*command, str(path)]
            seconds[path.stem] = timed_calls(
                lambda run=run: subprocess.run(run, check=True, capture_output=True), args.repeats
            )
    return seconds


def own_peak_rss_mb() -> float:
    """Peak RSS of this process image (``VmHWM``). ``ru_maxrss`` would also count the parent's
    pages at fork time, which Linux carries across ``exec``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    """Run one configuration and print its JSON line (timed runs per image, peak RSS)."""
    images = [Path(p) for p in args.images]
    if args.backend == "cpp":
        seconds = _time_cpp(args, images)
        # the binary's ru_maxrss: its own peak, or this small worker's RSS at fork if larger
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        seconds = _time_python(args, images)
        peak = own_peak_rss_mb()
    print(json.dumps({"samples": seconds, "peak_rss_mb": peak}))


def run_configuration(config: dict, args: argparse.Namespace, images: dict[str, Path]) -> dict:
    """One worker subprocess for ``config``: ``{"samples": {image: [s, ...]}, "peak_rss_mb"}`` or ``{"error"}``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", str(args.model)]
    command += ["--backend", config["backend"], "--precision", config["precision"], "--repeats", str(args.repeats)]
    command += ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--images", *map(str, images.values())]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_rounds(configs: list[dict], args: argparse.Namespace, images: dict[str, Path]) -> list[dict]:
    """Every configuration once per round, in turn; pool each one's samples and keep its peak RSS."""
    results = [{**config, "samples": {k: [] for k in images}, "peak_rss_mb": 0.0} for config in configs]
    for round_index in range(args.rounds):
        for result in results:
            if "error" in result:
                continue
            print(f"round {round_index + 1}/{args.rounds}: {result['name']} ...", file=sys.stderr, flush=True)
            run = run_configuration(result, args, images)
            if "error" in run:
                result["error"] = run["error"]
                continue
            for image, samples in run["samples"].items():
                result["samples"][image] += samples
            result["peak_rss_mb"] = max(result["peak_rss_mb"], run["peak_rss_mb"])
    for result in results:
        if "error" not in result:
            result["seconds"] = {k: statistics.median(v) for k, v in result["samples"].items()}
    return results


def add_ratios(results: list[dict], tiles: dict[str, int], gflop_tile: float | None, peak: float) -> None:
    """Speed-ups and memory vs PyTorch eager; tiles/s and GFLOP/s on the big image."""
    base = next((r for r in results if r["backend"] == "torch" and "seconds" in r), None)
    for r in results:
        if "seconds" not in r:
            continue
        seconds = r["seconds"]
        r["tiles_per_s"] = tiles["big"] / seconds["big"]
        if gflop_tile:
            r["gflops"] = gflop_tile * tiles["big"] / seconds["big"]
            r["fraction_of_matmul_peak"] = r["gflops"] / peak
        if base is not None:
            r["speedup_vs_torch"] = {k: base["seconds"][k] / seconds[k] for k in seconds}
            r["memory_vs_torch"] = r["peak_rss_mb"] / base["peak_rss_mb"]


def markdown(report: dict) -> str:
    rows = [
        "| configuration | s / DRIVE-size image | s / 3504x2336 image | tiles/s | peak RSS MB | speed-up vs torch "
        "(DRIVE / big) | GFLOP/s (% of matmul peak) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        if "error" in r:
            rows.append(f"| {r['name']} | failed: {r['error']} | | | | | |")
            continue
        s, up = r["seconds"], r.get("speedup_vs_torch")
        speed = f"{up['drive_size']:.2f}x / {up['big']:.2f}x" if up else "n/a"
        gflops = f"{r['gflops']:.1f} ({100 * r['fraction_of_matmul_peak']:.0f}%)" if "gflops" in r else "n/a"
        rows.append(
            f"| {r['name']} | {s['drive_size']:.2f} | {s['big']:.2f} | {r['tiles_per_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {speed} | {gflops} |"
        )
    m = report["model"]
    gflop = f"{m['gflop_per_drive_image']:.1f}" if m["gflop_per_drive_image"] else "n/a"
    rows.append(
        f"\nModel: {m['gflop_per_tile'] or 'n/a'} GFLOP per {m['tile']}² tile, {gflop} GFLOP per DRIVE-size image "
        f"({m['tiles']['drive_size']} tiles), {m['tiles']['big']} of the {m['grid_tiles']['big']} tiles of the "
        "3504x2336 image run (the others hold no FOV pixel). "
        f"numpy float32 matmul peak: {report['machine']['matmul_peak_gflops']:.1f} GFLOP/s."
    )
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/bench_backends.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--model", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="training checkpoint for the PyTorch eager baseline")
    parser.add_argument("--rounds", type=int, default=3, help="turns every configuration takes (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per image in each turn (default 2)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--images", nargs="*", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    bundle = load_bundle(args.model)
    if args.checkpoint is None:
        candidate = bundle.root / str(bundle.meta.get("source_checkpoint", "checkpoint.pt"))
        args.checkpoint = candidate if candidate.is_file() else None
    peak = matmul_peak_gflops()
    gflop_tile = tile_gflop(bundle)
    with tempfile.TemporaryDirectory() as folder:
        images = prepare_images(Path(folder), args.data_root)
        tiles, grid_tiles = {}, {}
        for key, path in images.items():
            image = read_image(path)
            grid = make_grid(image.shape, bundle.tile, bundle.overlap)
            tiles[key], grid_tiles[key] = len(tiles_touching(grid, fov_from_image(image))), len(grid)
        results = run_rounds(configurations(bundle, args.checkpoint), args, images)
    peak = max(peak, matmul_peak_gflops())  # other load on the machine lowers one measurement
    add_ratios(results, tiles, gflop_tile, peak)
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "matmul_peak_gflops": peak,
            "cpp_binary": str(CPP_BINARY) if CPP_BINARY.is_file() else None,
            "nice": os.nice(0),
        },
        "model": {
            "bundle": str(bundle.root),
            "name": bundle.meta.get("name"),
            "architecture": bundle.meta.get("architecture"),
            "tile": bundle.tile,
            "tiles": tiles,  # run per image: those holding an FOV pixel
            "grid_tiles": grid_tiles,
            "gflop_per_tile": round(gflop_tile, 3) if gflop_tile else None,
            "gflop_per_drive_image": gflop_tile * tiles["drive_size"] if gflop_tile else None,
        },
        "rounds": args.rounds,
        "repeats_per_round": args.repeats,
        "threads": args.threads,
        "results": results,
    }
    write_json(args.out, report)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
