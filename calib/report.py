"""INT8 vs FP32 on DRIVE test images: accuracy, mask agreement and ORT CPU speed (same run)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from fundus_vessels.runtime.agreement import agreeing_pixels, drive_test_planes
from fundus_vessels.runtime.backends.ort import open_session, session_predictor
from fundus_vessels.runtime.bundle import load_bundle
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.inference import TilePredictor, predict_plane
from fundus_vessels.runtime.metrics import SegmentationEvaluator

REPORT_JSON = "int8_report.json"
TARGETS = {"max_delta_points": 0.5, "min_agreement": 0.995, "min_speedup": 1.8}


def time_per_tile(predicts: dict[str, TilePredictor], tiles: np.ndarray, repeats: int = 9) -> dict[str, float]:
    """Median seconds per tile of each predictor, runs interleaved so load changes hit all alike."""
    for predict in predicts.values():
        predict(tiles)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in predicts}
    for _ in range(repeats):
        for name, predict in predicts.items():
            start = time.perf_counter()
            predict(tiles)
            samples[name].append((time.perf_counter() - start) / len(tiles))
    return {name: statistics.median(values) for name, values in samples.items()}


def optimized_ops(path: Path, threads: int) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs (shows whether QLinearConv fused)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        open_session(path, threads=threads, optimized_path=out)
        return dict(Counter(node.op_type for node in onnx.load(str(out)).graph.node))


def int8_report(
    bundle_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    images: int = 20,
    threads: int = 0,
    precision: str | None = None,
) -> dict:
    """Score FP32 and INT8 on DRIVE test (FOV, pooled), compare masks and time both; write the report.

    ``precision``: ``int8`` (TensorRT file) or ``int8_cpu``; default ``int8_cpu`` when present.
    """
    bundle = load_bundle(bundle_dir)
    threads = threads or os.cpu_count() or 1
    files = bundle.meta.get("files", {})
    precision = precision or ("int8_cpu" if "int8_cpu" in files else "int8")
    paths = {"fp32": bundle.model_path("fp32"), "int8": bundle.model_path(precision)}
    predicts = {
        p: session_predictor(open_session(path, threads=threads), bundle.vessel_index, str(path))
        for p, path in paths.items()
    }
    evaluators = {p: SegmentationEvaluator(bundle.threshold) for p in predicts}
    agree = total = 0
    first_plane = None
    for sample in drive_test_planes(bundle, data_root, images):
        plane, truth, fov = sample.plane, sample.truth, sample.fov
        first_plane = plane if first_plane is None else first_plane
        probs = {p: predict_plane(plane, f, bundle.tile, bundle.overlap) for p, f in predicts.items()}
        for p, prob in probs.items():
            evaluators[p].add(sample.name, prob, truth, fov)
        same, count = agreeing_pixels(probs["fp32"], probs["int8"], fov, bundle.threshold)
        agree, total = agree + same, total + count
    scores = {p: {k: e.summary()["pooled"][k] for k in ("miou", "f1", "auc")} for p, e in evaluators.items()}
    deltas = {k: 100.0 * (scores["int8"][k] - scores["fp32"][k]) for k in ("miou", "f1", "auc")}
    t = bundle.tile
    bench_tiles = np.repeat(first_plane[None, None, :t, :t], 8, axis=0).astype(np.float32)
    seconds = time_per_tile(predicts, bench_tiles)
    speedup = seconds["fp32"] / seconds["int8"]
    report = {
        "precision": precision,
        "file": paths["int8"].name,
        "data": f"DRIVE test, first {images} images, FOV pixels, pooled",
        "scores": scores,
        "delta_points": deltas,
        "mask_agreement": agree / total,
        "speed": {
            "runtime": "onnxruntime CPUExecutionProvider",
            "intra_op_threads": threads,
            "batch": len(bench_tiles),
            "seconds_per_tile": seconds,
            "speedup_int8_vs_fp32": speedup,
            "int8_optimized_ops": optimized_ops(paths["int8"], threads),
        },
        "targets": TARGETS,
        "meets_targets": {
            "accuracy": all(abs(deltas[k]) <= TARGETS["max_delta_points"] for k in ("miou", "f1")),
            "agreement": agree / total >= TARGETS["min_agreement"],
            "speed": speedup >= TARGETS["min_speedup"],
        },
    }
    write_json(bundle.root / REPORT_JSON, report)
    return report
