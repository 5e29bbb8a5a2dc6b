"""One Ray Data actor: ``fundus-infer``'s segmenter and per-image code path over a stream of tasks.

A task is one input (``index``, ``file``, ``stem``, its previous row if any, or the reason it
cannot run); the actor returns its row of the results table. No Ray import here: Ray Data calls
the class like any callable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
from fundus_vessels.runtime.batch.table import is_done, output_hashes
from fundus_vessels.runtime.bundle import sha256_file
from fundus_vessels.runtime.cli import Job, segment_job, setup
from fundus_vessels.runtime.imageio import read_binary_mask, read_image
from fundus_vessels.runtime.pipeline import resolve_fov


def input_hash(path: Path) -> str:
    """sha256 of the input file ('' when it cannot be read: the failure row says why)."""
    try:
        return sha256_file(path)
    except OSError:
        return ""


def failed_row(task: dict, input_sha256: str, settings_sha256: str, reason: str) -> dict:
    return {
        "index": task["index"],
        "file": task["file"],
        "stem": task["stem"],
        "status": "failed",
        "reason": reason,
        "input_sha256": input_sha256,
        "settings_sha256": settings_sha256,
        "outputs_sha256": "{}",
        "entry": "",
    }


def entry_row(task: dict, entry: dict, input_sha256: str, settings_sha256: str, out_dir: Path) -> dict:
    """The table row of a segmented (or quality-refused) image, from its summary entry."""
    timings = entry.get("timings", {})
    return {
        "index": task["index"],
        "file": task["file"],
        "stem": task["stem"],
        "status": "refused" if entry.get("refused") else "ok",
        "reason": "quality gate refused it" if entry.get("refused") else "",
        "input_sha256": input_sha256,
        "settings_sha256": settings_sha256,
        "outputs_sha256": json.dumps(output_hashes(out_dir, entry.get("outputs", {})), sort_keys=True),
        "width": entry.get("width"),
        "height": entry.get("height"),
        "vessel_fraction": entry.get("vessel_fraction"),
        "seconds": entry.get("seconds"),
        "preprocess_s": timings.get("preprocess"),
        "inference_s": timings.get("inference"),
        "postprocess_s": timings.get("postprocess"),
        "entry": json.dumps(entry, sort_keys=True),
    }


class SegmentWorker:
    """Ray Data actor: builds ``fundus-infer``'s segmenter once, then turns tasks into rows."""

    def __init__(self, args: argparse.Namespace, settings_sha256: str) -> None:
        cv2.setNumThreads(max(1, int(args.threads or 1)))  # OpenCV (CLAHE, PNG) within the actor's CPUs
        self.args = args
        self.settings = settings_sha256
        self.segmenter, self.fov, self.kinds = setup(args)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [json.dumps(self.row(json.loads(str(t))), sort_keys=True) for t in batch["task"]]
        return {"row": np.array(rows, dtype=object)}

    def row(self, task: dict) -> dict:
        """This input's row: the previous one when it is still valid, else a fresh run."""
        path, out_dir = Path(task["file"]), Path(self.args.output_dir)
        sha = input_hash(path)
        if task.get("clash"):
            return failed_row(task, sha, self.settings, task["clash"])
        prior = task.get("prior")
        if is_done(prior, sha, self.settings, out_dir):
            return prior
        job = Job(source=task["file"], stem=task["stem"], path=path)
        args = self.args
        entry, failure = segment_job(
            job, self.segmenter, self.fov, out_dir, self.kinds, True, args.keep_identifiers, args.quality
        )
        if failure is not None:
            return failed_row(task, sha, self.settings, failure["error"])
        row = entry_row(task, entry, sha, self.settings, out_dir)
        if self.args.measure and row["status"] == "ok":
            row |= self.measurements(path, out_dir / entry["outputs"]["mask"])
        return row

    def measurements(self, image_path: Path, mask_path: Path) -> dict:
        """``fundus_vessels.runtime.measure.measure_mask`` of the written mask, as ``measure.<name>`` columns."""
        from fundus_vessels.runtime.measure import measure_mask

        start = time.perf_counter()
        fov = resolve_fov(read_image(image_path), self.fov)
        figures = measure_mask(read_binary_mask(mask_path), fov)
        columns = {f"measure.{k}": v if isinstance(v, (int, float, str)) else str(v) for k, v in figures.items()}
        return columns | {"measure_s": round(time.perf_counter() - start, 4)}
