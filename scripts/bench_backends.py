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
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.imageio import read_image, write_image, write_json
from fundus_vessels.runtime.scale import decide_scale, resample
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
    photo = make_synthetic_fundus(*BIG_SHAPE, seed=1).image_rgb
    write_image(big, photo)
    write_image(folder / "big.jpg", photo)  # what a camera writes: fundus-infer rows read this one
    return {"drive_size": small, "big": big}


def tiles_bundle(bundle: Bundle, folder: Path) -> Path | None:
    """A copy of ``bundle`` that always tiles (``tiling.whole_image`` 0), as every bundle ran before
    whole-image passes; None when the bundle has none to turn off."""
    if not bundle.whole_image:
        return None
    root = folder / f"{bundle.root.name}-tiles"
    shutil.copytree(bundle.root, root, ignore=shutil.ignore_patterns("engines"))
    meta = json.loads((root / "model.json").read_text())
    meta["tiling"]["whole_image"] = 0
    write_json(root / "model.json", meta)
    return root


def infer_images(folder: Path, data_root: Path | None) -> list[Path]:
    """What the fundus-infer rows run: the 20 DRIVE test photographs (else the DRIVE-size image), then
    the 3504x2336 JPEG, decoded and written with all three outputs."""
    drive = data_root / "DRIVE" / "test" / "images" if data_root else None
    photos = sorted(drive.glob("*.tif")) if drive is not None and drive.is_dir() else [folder / "drive_size.png"]
    return [*photos, folder / "big.jpg"]


def configurations(bundle: Bundle, checkpoint: Path | None, tiles: Path | None) -> list[dict]:
    """Every backend/precision this bundle and machine can run (PyTorch eager first), and the
    fundus-infer rows (decode to written outputs). With ``tiles`` (the bundle with whole-image passes
    off) the rows whole-image passes change run on both, side by side."""
    shipped = str(bundle.root)
    variants = [("", shipped)] if tiles is None else [(" whole-image", shipped), (" tiles", str(tiles))]
    configs = []
    if checkpoint is not None:
        configs.append({"name": "PyTorch eager", "backend": "torch", "precision": "fp32", "model": shipped})
    for suffix, model in variants:
        configs.append({"name": f"ORT FP32{suffix}", "backend": "ort", "precision": "fp32", "model": model})
    for precision, label in (("fp16", "ORT FP16"), ("int8", "ORT INT8")):
        if bundle.has(precision):  # fixed tile shapes: always tiles
            configs.append({"name": label, "backend": "ort", "precision": precision, "model": shipped})
    if bundle.has("fp32_static"):
        for suffix, model in variants:
            configs.append({"name": f"OpenCV DNN{suffix}", "backend": "opencv", "precision": "fp32", "model": model})
    cpp = [("cpp", "C++ fundus-infer (OpenCV DNN)")] if CPP_BINARY.is_file() else []
    for backend, label in cpp:
        for suffix, model in variants:
            configs.append({"name": f"{label}{suffix}", "backend": backend, "precision": "fp32", "model": model})
    for backend, label in [("infer-py", "fundus-infer Python (ORT)")] + [("infer-cpp", "fundus-infer C++")] * bool(cpp):
        for suffix, model in variants:
            configs.append({"name": f"{label}{suffix}", "backend": backend, "precision": "fp32", "model": model})
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


def _time_infer(args: argparse.Namespace, images: list[Path]) -> dict[str, list[float]]:
    """fundus-infer's own per-image ``seconds`` (read → written mask, prob and overlay PNGs), ``repeats``
    runs of one process each: ``drive_size`` holds every DRIVE photograph's, ``big`` the last image's."""
    seconds: dict[str, list[float]] = {"drive_size": [], "big": []}
    cpp = args.backend == "infer-cpp"
    command = [str(CPP_BINARY)] if cpp else [sys.executable, "-m", "fundus_vessels.runtime"]
    command += ["--model", str(args.model), "--quiet"] + (["--threads", str(args.threads)] if args.threads else [])
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([*command, *map(str, images), "-o", out], check=True, capture_output=True)
            entries = json.loads((Path(out) / "summary.json").read_text())["images"]
        seconds["drive_size"] += [e["seconds"] for e in entries[:-1]]
        seconds["big"].append(entries[-1]["seconds"])
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
    if args.backend in ("infer-py", "infer-cpp"):
        seconds = _time_infer(args, images)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    elif args.backend == "cpp":
        seconds = _time_cpp(args, images)
        # the binary's ru_maxrss: its own peak, or this small worker's RSS at fork if larger
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        seconds = _time_python(args, images)
        peak = own_peak_rss_mb()
    print(json.dumps({"samples": seconds, "peak_rss_mb": peak}))


def run_configuration(config: dict, args: argparse.Namespace, images: dict[str, Path]) -> dict:
    """One worker subprocess for ``config``: ``{"samples": {image: [s, ...]}, "peak_rss_mb"}`` or ``{"error"}``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", config["model"]]
    command += ["--backend", config["backend"], "--precision", config["precision"], "--repeats", str(args.repeats)]
    command += ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    command += ["--threads", str(args.threads)] if args.threads else []
    paths = images["infer"] if config["backend"].startswith("infer-") else [images["drive_size"], images["big"]]
    command += ["--images", *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_rounds(configs: list[dict], args: argparse.Namespace, images: dict[str, Path]) -> list[dict]:
    """Every configuration once per round, in turn; pool each one's samples and keep its peak RSS."""
    results = [{**config, "samples": {"drive_size": [], "big": []}, "peak_rss_mb": 0.0} for config in configs]
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
    """Speed-ups against ORT FP32 with tiles (the CPU default before whole-image passes), against the
    same row with tiles (``vs_tiles``) and against PyTorch eager (when run); tiles/s and GFLOP/s on the
    big image for the rows that run tiles through the model alone."""
    done = {r["name"]: r for r in results if "seconds" in r}
    torch = next((r for r in done.values() if r["backend"] == "torch"), None)
    baseline = done.get("ORT FP32 tiles", done.get("ORT FP32"))
    for r in done.values():
        seconds = r["seconds"]
        if not r["name"].endswith(" whole-image") and not r["backend"].startswith("infer-"):
            r["tiles_per_s"] = tiles["big"] / seconds["big"]
            if gflop_tile:
                r["gflops"] = gflop_tile * tiles["big"] / seconds["big"]
                r["fraction_of_matmul_peak"] = r["gflops"] / peak
        if baseline is not None and not r["backend"].startswith("infer-"):
            r["speedup_vs_ort_tiles"] = {k: baseline["seconds"][k] / seconds[k] for k in seconds}
        tiled = done.get(r["name"].removesuffix(" whole-image") + " tiles")
        if r["name"].endswith(" whole-image") and tiled is not None:
            r["speedup_vs_tiles"] = {k: tiled["seconds"][k] / seconds[k] for k in seconds}
        if torch is not None:
            r["speedup_vs_torch"] = {k: torch["seconds"][k] / seconds[k] for k in seconds}
            r["memory_vs_torch"] = r["peak_rss_mb"] / torch["peak_rss_mb"]


def _pair(values: dict | None) -> str:
    return f"{values['drive_size']:.2f}x / {values['big']:.2f}x" if values else ""


def markdown(report: dict) -> str:
    rows = [
        "| configuration | s / DRIVE image | s / 3504x2336 image | vs ORT FP32 tiles (DRIVE / big) | "
        "whole-image vs tiles (DRIVE / big) | tiles/s | peak RSS MB | GFLOP/s (% of matmul peak) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        if "error" in r:
            rows.append(f"| {r['name']} | failed: {r['error']} | | | | | | |")
            continue
        s = r["seconds"]
        tiles = f"{r['tiles_per_s']:.2f}" if "tiles_per_s" in r else ""
        gflops = f"{r['gflops']:.1f} ({100 * r['fraction_of_matmul_peak']:.0f}%)" if "gflops" in r else ""
        rows.append(
            f"| {r['name']} | {s['drive_size']:.3f} | {s['big']:.3f} | {_pair(r.get('speedup_vs_ort_tiles'))} | "
            f"{_pair(r.get('speedup_vs_tiles'))} | {tiles} | {r['peak_rss_mb']:.0f} | {gflops} |"
        )
    m = report["model"]
    gflop = f"{m['gflop_per_drive_image']:.1f}" if m["gflop_per_drive_image"] else "n/a"
    rows.append(
        f"\nModel: {m['gflop_per_tile'] or 'n/a'} GFLOP per {m['tile']}² tile, {gflop} GFLOP per DRIVE-size image "
        f"({m['tiles']['drive_size']} tiles), {m['tiles']['big']} of the {m['grid_tiles']['big']} tiles of the "
        "3504x2336 image run after scale normalisation (the others hold no FOV pixel). "
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
        for key, path in list(images.items()):
            fov = fov_from_image(read_image(path))  # tiles of the plane the model sees (after scale normalisation)
            model_fov = resample(fov, decide_scale(fov, bundle.scale).factor, "mask")
            grid = make_grid(model_fov.shape, bundle.tile, bundle.overlap)
            tiles[key], grid_tiles[key] = len(tiles_touching(grid, model_fov)), len(grid)
        images["infer"] = infer_images(Path(folder), args.data_root)
        configs = configurations(bundle, args.checkpoint, tiles_bundle(bundle, Path(folder)))
        results = run_rounds(configs, args, images)
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
