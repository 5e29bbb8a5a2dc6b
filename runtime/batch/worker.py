"""One Ray Data actor: ``fundus-infer``'s segmenter and per-image code path over a stream of tasks.

A task is one input (``index``, ``file``, ``stem``, its previous row if any, or the reason it
cannot run); the actor returns its row of the results table. No Ray import here: Ray Data calls
the class like any callable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from fundus_vessels.runtime.allocator import keep_freed_image_memory
from fundus_vessels.runtime.batch.table import is_done, output_hashes
from fundus_vessels.runtime.bundle import sha256_file
from fundus_vessels.runtime.entries import ImageEntry
from fundus_vessels.runtime.jobs import Job, segment_job, setup

DRIVER_CHECK_SECONDS = 1.0


def exit_with_driver(driver: tuple[str, int] | None) -> None:
    """End this actor's process when the fundus-batch driver that started the local Ray is gone, and on SIGTERM.

    Ray's own clean-up runs only when the driver exits normally: after a SIGKILL the actors stayed, each with a
    model loaded, and ignored SIGTERM.
    """
    with contextlib.suppress(ValueError):  # not the main thread: Ray's default handling stays
        signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    if driver is None or driver[0] != socket.gethostname():
        return

    def watch() -> None:
        while True:
            try:
                os.kill(driver[1], 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(DRIVER_CHECK_SECONDS)

    threading.Thread(target=watch, name="fundus-driver-watch", daemon=True).start()


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


def entry_row(task: dict, entry: ImageEntry, input_sha256: str, settings_sha256: str, out_dir: Path) -> dict:
    """The table row of a segmented (or quality-refused) image, from its entry."""
    return {
        "index": task["index"],
        "file": task["file"],
        "stem": task["stem"],
        "status": "refused" if entry.refused else "ok",
        "reason": "quality gate refused it" if entry.refused else "",
        "input_sha256": input_sha256,
        "settings_sha256": settings_sha256,
        "outputs_sha256": json.dumps(output_hashes(out_dir, entry.outputs), sort_keys=True),
        "width": entry.width,
        "height": entry.height,
        "vessel_fraction": entry.vessel_fraction,
        "seconds": entry.seconds,
        "preprocess_s": entry.timings.get("preprocess"),
        "inference_s": entry.timings.get("inference"),
        "postprocess_s": entry.timings.get("postprocess"),
        "entry": json.dumps(entry.to_json(), sort_keys=True),
    }


class SegmentWorker:
    """Ray Data actor: builds ``fundus-infer``'s segmenter once, then turns tasks into rows."""

    def __init__(self, args: argparse.Namespace, settings_sha256: str, driver: tuple[str, int] | None = None) -> None:
        cv2.setNumThreads(max(1, int(args.threads or 1)))  # OpenCV (CLAHE, PNG) within the actor's CPUs
        keep_freed_image_memory()  # the actor is a process of its own, segmenting one photograph after another
        exit_with_driver(driver)
        self.args = args
        self.settings = settings_sha256
        self.run = replace(setup(args), quiet=True)  # per-image lines would come from every actor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [json.dumps(self.row(json.loads(str(t))), sort_keys=True) for t in batch["task"]]
        return {"row": np.array(rows, dtype=object)}

    def row(self, task: dict) -> dict:
        """This input's row: the previous one when it is still valid, else a fresh run."""
        path, out_dir = Path(task.get("path", task["file"])), Path(self.args.output_dir)
        sha = input_hash(path)
        if task.get("clash"):
            return failed_row(task, sha, self.settings, task["clash"])
        prior = task.get("prior")
        if is_done(prior, sha, self.settings, out_dir):
            return prior
        job = Job(source=task["file"], stem=task["stem"], path=path)
        entry, failure = segment_job(job, self.run)
        if failure is not None:
            return failed_row(task, sha, self.settings, failure.error)
        tables, unmeasured = None, None
        if self.args.measure and not entry.refused:
            try:
                tables = self.measure(entry, out_dir)
            except (ValueError, OSError) as exc:  # as fundus-infer: segmented, and a failure saying why not measured
                from fundus_vessels.runtime.measure.recorder import PROG as MEASURE_PROG

                unmeasured = f"{MEASURE_PROG}: {exc}"
        row = entry_row(task, entry, sha, self.settings, out_dir)
        if unmeasured is not None:
            return row | {"status": "failed", "reason": unmeasured}
        if tables is not None:
            figures = entry.measurements or {}
            row |= {f"measure.{k}": v if isinstance(v, (int, float, str)) else str(v) for k, v in figures.items()}
            row["measure_tables"] = json.dumps(tables, default=float)  # column order kept for the CSVs
        return row

    def measure(self, entry: ImageEntry, out_dir: Path) -> dict:
        """``fundus-infer --measure`` for one entry (:func:`~fundus_vessels.runtime.measure.infer.measure_entry`,
        the same code path): ``entry.measurements`` and its picture; returns its measurements.csv and
        segments.csv rows (the driver writes both tables)."""
        from fundus_vessels.runtime.measure.infer import measure_entry, measure_recorder
        from fundus_vessels.runtime.measure.sources import collect_sources_from_entries

        recorder = measure_recorder(self.args)
        ((data, source),) = collect_sources_from_entries(out_dir, [entry.to_json()], self.args.fov)
        if source is None:
            raise ValueError(f"{entry.file}: --measure needs the mask: keep mask in --save")
        entry.measurements = measure_entry(recorder, out_dir, data, source)
        return {"rows": recorder.rows, "segments": recorder.segments}
