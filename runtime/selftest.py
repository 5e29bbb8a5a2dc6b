"""``fundus-infer --self-test``: every backend and precision this device can run, held to the bundle's tolerances.

The command a device owner runs after installing (a Jetson, a clinic GPU, a plain CPU). Each
candidate (ONNX Runtime FP32/FP16/INT8 on whatever providers load here, OpenCV DNN FP32, native
TensorRT FP32/FP16/INT8, whose engines are built when absent) runs the same inputs: synthetic fundus
photographs (known vessels and FOV, :mod:`runtime.synthetic`) tiled and stitched as the runtime
does, and tiles cropped at random from further synthetic photographs. Each is compared with ONNX
Runtime on the CPU in FP32 against the tolerance of its precision (:data:`runtime.agreement.TOLERANCES`,
the same limits ``fundus-export parity`` holds every backend to) and timed in tiles per second at a
few batch sizes. Prints a table, writes ``self-test.json``, lists what it could not run and why.
Exit status: 0 all ran within tolerance, 1 a candidate was outside tolerance or failed to run,
2 the bundle or output folder is unusable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fundus_vessels.runtime.agreement import TOLERANCES, Plane, Run, compare, failures, run_backend, synthetic_planes
from fundus_vessels.runtime.backends import Backend, BackendError, create_backend
from fundus_vessels.runtime.backends.ort import CPU_ONLY, open_session, session_predictor
from fundus_vessels.runtime.bundle import PRECISION_FILES, Bundle, BundleError
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.preprocess import preprocess
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from fundus_vessels.runtime.timing import timed_calls

SELF_TEST_JSON = "self-test.json"
CANDIDATES = (
    ("ort", "fp32"),
    ("ort", "fp16"),
    ("ort", "int8"),
    ("opencv", "fp32"),
    ("trt", "fp32"),
    ("trt", "fp16"),
    ("trt", "int8"),
)
BATCHES = (1, 4, 8)
REFERENCE = "onnxruntime CPU fp32"


@dataclass(frozen=True)
class Settings:
    """What the self-test runs: synthetic images of ``image_size``², ``drawn_tiles`` random crops, timing batches."""

    images: int = 2
    image_size: int = 384
    drawn_tiles: int = 8
    batches: tuple[int, ...] = BATCHES
    repeats: int = 3
    threads: int | None = None
    build_engines: bool = True


def drawn_tiles(bundle: Bundle, count: int, seed: int = 100) -> np.ndarray:
    """(count, 1, tile, tile) crops at random places of two synthetic photographs not used for the planes."""
    rng = np.random.default_rng(seed)
    tile, size = bundle.tile, max(2 * bundle.tile, 384)
    planes = [preprocess(make_synthetic_fundus(size, size, seed=seed + i).image_rgb, bundle.preprocess) for i in (0, 1)]
    tiles = []
    for i in range(count):
        y, x = (int(v) for v in rng.integers(0, size - tile + 1, 2))
        tiles.append(planes[i % 2][y : y + tile, x : x + tile])
    return np.stack(tiles)[:, None].astype(np.float32)


def tiles_per_second(predict: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray, batch: int, repeats: int) -> float:
    """Median tiles/s of ``repeats`` calls on ``batch`` tiles (after one warm-up call)."""
    x = np.ascontiguousarray(np.resize(tiles, (batch, *tiles.shape[1:])))
    return round(batch / float(np.median(timed_calls(lambda: predict(x), repeats))), 2)


def open_candidate(bundle: Bundle, kind: str, precision: str, settings: Settings) -> Backend:
    """The backend of one candidate; TensorRT engines are built first when absent or stale."""
    if kind == "trt":
        from fundus_vessels.runtime.backends.trt import engine_problem, tensorrt_status

        reason = tensorrt_status()
        if reason is not None:
            raise LookupError(reason)
        if settings.build_engines and engine_problem(bundle, precision) is not None:
            from fundus_vessels.runtime.backends.trt_build import build_engine

            build_engine(bundle, precision)
    return create_backend(kind, bundle, precision, settings.threads)


def source_key(kind: str, precision: str) -> str:
    """The bundle file a candidate needs (OpenCV DNN runs the fixed-shape FP32 file)."""
    return "fp32_static" if kind == "opencv" else precision


def run_candidate(
    backend: Backend, planes: list[Plane], tiles: np.ndarray, reference: dict, bundle: Bundle, s: Settings
) -> dict:
    """Compare one backend with the reference on planes and drawn tiles, time it, and judge it."""
    run = run_backend(backend.predict, planes, bundle, max(s.batches))
    result = compare(reference["run"], run, planes, bundle.threshold)
    drawn = float(np.abs(np.asarray(backend.predict(tiles)) - reference["drawn"]).max())
    result["drawn_tile_max_abs_diff"] = drawn
    result["tile_max_abs_diff"] = max(result["tile_max_abs_diff"], drawn)
    tol_key = "fp32_static" if backend.name == "opencv" else backend.precision
    broken = failures(result, TOLERANCES[tol_key])
    return {
        "backend": backend.name,
        "precision": backend.precision,
        "model_file": Path(backend.model_path).name,
        **({"providers": list(backend.providers)} if hasattr(backend, "providers") else {}),
        **result,
        "tiles_per_second": {str(b): tiles_per_second(backend.predict, tiles, b, s.repeats) for b in s.batches},
        "tolerance": {k: v for k, v in asdict(TOLERANCES[tol_key]).items() if v is not None},
        "pass": not broken,
        "failures": broken,
    }


def reference_outputs(bundle: Bundle, planes: list[Plane], tiles: np.ndarray, s: Settings) -> dict:
    """ONNX Runtime CPU FP32 on the planes and drawn tiles, and its speed."""
    predict = session_predictor(open_session(bundle.model_path("fp32"), CPU_ONLY, s.threads), bundle.vessel_index)
    run: Run = run_backend(predict, planes, bundle, max(s.batches))
    speed = {str(b): tiles_per_second(predict, tiles, b, s.repeats) for b in s.batches}
    return {"run": run, "drawn": predict(tiles), "tiles_per_second": speed}


def run_self_test(bundle: Bundle, settings: Settings = Settings()) -> dict:
    """Every candidate this machine can run vs ONNX Runtime CPU FP32; the ``self-test.json`` content."""
    planes = synthetic_planes(bundle, settings.images, settings.image_size)
    tiles = drawn_tiles(bundle, settings.drawn_tiles)
    reference = reference_outputs(bundle, planes, tiles, settings)
    results, skipped, errors = {}, {}, {}
    for kind, precision in CANDIDATES:
        name = f"{kind}_{precision}"
        key = source_key(kind, precision)
        if not bundle.has(key):
            skipped[name] = f"{PRECISION_FILES[key]} not in the bundle"
            continue
        try:
            backend = open_candidate(bundle, kind, precision, settings)
        except LookupError as exc:  # the library or device is not here: nothing to judge
            skipped[name] = str(exc.args[0])
            continue
        except (BackendError, BundleError, OSError) as exc:
            errors[name] = str(exc)
            continue
        try:
            results[name] = run_candidate(backend, planes, tiles, reference, bundle, settings)
        except (BackendError, RuntimeError, ValueError) as exc:
            errors[name] = f"{exc.__class__.__name__}: {exc}"
    return {
        "tool": "fundus-infer --self-test",
        "bundle": {"name": str(bundle.meta.get("name", bundle.root.name)), "path": str(bundle.root)},
        "reference": {
            "name": REFERENCE,
            "model_file": PRECISION_FILES["fp32"],
            "tiles_per_second": reference["tiles_per_second"],
        },
        "inputs": {
            "images": [p.name for p in planes],
            "image_size": settings.image_size,
            "plane_tiles": int(reference["run"].tiles.shape[0]),
            "drawn_tiles": int(tiles.shape[0]),
            "mask_region": "fov",
        },
        "results": results,
        "skipped": skipped,
        "errors": errors,
        "pass": bool(results) and not errors and all(r["pass"] for r in results.values()),
    }


def format_table(report: dict) -> str:
    """The self-test as text: one row per candidate, then what was skipped or failed and why."""
    batches = list(report["reference"]["tiles_per_second"])
    speed_head = " ".join(f"{'b' + b + ' t/s':>9}" for b in batches)
    columns = f"{'max|Δp|':>9} {'agree %':>9} {'ΔMIoU':>7} {'ΔF1':>7}"
    header = f"{'candidate':<12} {'providers':<22} {columns} {speed_head}  result"
    lines = [f"reference: {report['reference']['name']}", header, "-" * len(header)]
    ref_speed = " ".join(f"{v:>9.1f}" for v in report["reference"]["tiles_per_second"].values())
    lines.append(f"{'reference':<12} {'CPUExecutionProvider':<22} {'-':>9} {'-':>9} {'-':>7} {'-':>7} {ref_speed}")
    for name, r in report["results"].items():
        providers = ",".join(p.replace("ExecutionProvider", "") for p in r.get("providers", [])) or r["backend"]
        worst = max(r["tile_max_abs_diff"], r["image_max_abs_diff"])
        d_miou = f"{r['miou_delta_points']:+.3f}" if "miou_delta_points" in r else "-"
        d_f1 = f"{r['f1_delta_points']:+.3f}" if "f1_delta_points" in r else "-"
        speed = " ".join(f"{v:>9.1f}" for v in r["tiles_per_second"].values())
        verdict = "ok" if r["pass"] else "FAIL: " + "; ".join(r["failures"])
        lines.append(
            f"{name:<12} {providers[:22]:<22} {worst:>9.3g} {100 * r['mask_agreement']:>9.4f} {d_miou:>7} {d_f1:>7} "
            f"{speed}  {verdict}"
        )
    lines += [f"{name:<12} not run: {why}" for name, why in report["skipped"].items()]
    lines += [f"{name:<12} ERROR: {why}" for name, why in report["errors"].items()]
    lines.append("PASS" if report["pass"] else "FAIL")
    return "\n".join(lines)


def self_test(bundle: Bundle, out_dir: Path, settings: Settings = Settings()) -> tuple[int, dict]:
    """Run, print the table, write ``out_dir/self-test.json``; returns (exit status, report)."""
    report = run_self_test(bundle, settings)
    print(format_table(report))
    write_json(Path(out_dir) / SELF_TEST_JSON, report)
    return (ExitStatus.OK if report["pass"] else ExitStatus.FAILED), report


def command(bundle_dir: Path, out_dir: Path, threads: int | None, prog: str) -> int:
    """``fundus-infer --self-test``: exit status 0 pass, 1 outside tolerance or a backend failed, 2 unusable setup."""
    from fundus_vessels.runtime.bundle import load_bundle

    try:
        bundle = load_bundle(bundle_dir)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        status, _ = self_test(bundle, out_dir, Settings(threads=threads))
    except (BundleError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    return status
