"""The per-image work every ``fundus-infer`` front end shares: the one-shot CLI, ``--watch`` and ``fundus-batch``.

- :func:`setup` checks everything that must hold before the first image and returns one frozen
  :class:`RunSettings` (segmenter, FOV, outputs, quality mode, ...);
- :func:`collect_jobs` turns INPUTs into :class:`Job` s;
- :func:`run_job` reads, grades, segments and writes one image and returns its summary entry;
  :func:`segment_job` is the same for batch loops (a failure becomes a failure entry);
- :func:`build_summary` is the content of ``summary.json``.

The command-line parsing stays in :mod:`fundus_vessels.runtime.cli` (and ``batch/cli.py``): no
module here imports a CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fundus_vessels.runtime import dicom, imageio
from fundus_vessels.runtime.backends import BackendError
from fundus_vessels.runtime.bundle import BundleError, sha256_file
from fundus_vessels.runtime.entries import FailureEntry, ImageEntry
from fundus_vessels.runtime.extras import missing_extra
from fundus_vessels.runtime.image_header import stored_channels
from fundus_vessels.runtime.imageio import ImageReadError, list_images, read_binary_mask, read_image, write_image
from fundus_vessels.runtime.metrics import ConfusionMatrix
from fundus_vessels.runtime.outputs import DICOM_KINDS, SAVE_KINDS, save_outputs
from fundus_vessels.runtime.outputs_guard import input_folder_clash, output_names, printable
from fundus_vessels.runtime.pictures import write_demo_pictures
from fundus_vessels.runtime.pipeline import FovSpec, Segmenter
from fundus_vessels.runtime.quality import assess_image, assess_scale, assess_vessels, rounded
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

PROG = "fundus-infer"  # the tool named in messages and in summary.json (fundus-batch renames the summary's)
# failures whose message already says what is wrong; others are reported with their type
EXPECTED_ERRORS = (ImageReadError, ValueError, OSError, BackendError)
DEMO_STEM = "demo"


class UsageError(ValueError):
    """Bad arguments, bundle or output folder: nothing can run (exit status 2)."""


@dataclass
class Job:
    """One image to segment: a file, or the synthetic demo (``truth`` known)."""

    source: str
    stem: str
    path: Path | None = None
    image: np.ndarray | None = None
    truth: np.ndarray | None = None
    truth_fov: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RunSettings:
    """What every image of a run shares, built once by :func:`setup`.

    ``fov`` is the parsed ``--fov`` (``auto``, ``none`` or a mask), ``fov_setting`` the text given
    (summary.json's ``fov``); ``quality`` one of :data:`~fundus_vessels.runtime.quality.QUALITY_MODES`.
    """

    segmenter: Segmenter
    out_dir: Path
    kinds: tuple[str, ...]
    fov: FovSpec = "auto"
    fov_setting: str = "auto"
    quality: str = "flag"
    keep_identifiers: bool = False
    quiet: bool = False
    measure: bool = False


def usable_threads(threads: int | None, quiet: bool) -> int | None:
    """``--threads``, at most the CPUs this process may run on: more only queue (999 took minutes per image)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads is None or threads <= cpus:
        return threads
    if not quiet:
        print(f"{PROG}: --threads {threads}: using {cpus}, the CPUs this process may use", file=sys.stderr)
    return cpus


def parse_save(value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    choices = SAVE_KINDS + DICOM_KINDS
    unknown = sorted(set(kinds) - set(choices))
    if unknown:
        raise UsageError(f"--save: unknown output(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    return kinds


def parse_fov(value: str) -> FovSpec:
    if value in ("auto", "none"):
        return value
    try:
        return read_binary_mask(value)
    except ImageReadError as exc:
        raise UsageError(f"--fov: {exc}") from exc


def prepare_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise UsageError(f"{out_dir}: output folder not writable ({exc.strerror or exc})") from exc


def collect_jobs(inputs: list[str], demo: bool) -> tuple[list[Job], list[dict]]:
    """Expand folders into their images; folders without images are failures."""
    jobs, failures = [], []
    for item in inputs:
        path = Path(item)
        files = list_images(path) if path.is_dir() else [path]
        if not files:
            failures.append({"file": item, "error": "folder holds no images"})
        jobs.extend(Job(source=printable(f), stem=f.stem, path=f) for f in files)
    if demo:
        synthetic = make_synthetic_fundus()
        source = f"{DEMO_STEM}_input.png"  # the drawn photograph, written into OUTDIR beside its demo_* outputs
        jobs.append(Job(source, DEMO_STEM, None, synthetic.image_rgb, synthetic.vessels, synthetic.fov))
    return jobs, failures


def job_outputs(job: Job, kinds: tuple[str, ...], measure: bool) -> list[str]:
    """The files ``job`` writes into the output folder (the demo also writes its drawn photograph)."""
    names = output_names(job.stem, kinds, measure, dicom.SEG_SUFFIX)
    return names if job.path is not None else [*names, f"{job.stem}_input.png"]


def demo_scores(job: Job, mask: np.ndarray) -> dict[str, float]:
    """Scores of the demo's prediction against the vessel tree it was drawn with (inside its FOV)."""
    matrix = ConfusionMatrix()
    matrix.update(job.truth, mask, job.truth_fov)
    return matrix.compute()


def run_job(job: Job, settings: RunSettings) -> ImageEntry:
    """Read, grade, segment and write one image; returns its summary entry (raises on failure).

    ``settings.quality``: ``flag`` adds the gate's verdict to the entry, ``refuse`` also writes
    nothing for a rejected image (entry ``refused: true``), ``off`` skips the gate.
    """
    start = time.perf_counter()
    source = dicom.read_header(job.path) if job.path is not None and dicom.is_dicom(job.path) else None
    written: list[Path] = []
    try:
        return _run_job(job, settings, source, start, written)
    except Exception as exc:
        for path in written:  # a failed image leaves none of its outputs behind
            path.unlink(missing_ok=True)
        if source is None or settings.keep_identifiers:
            raise
        scrubbed = dicom.redact(str(exc), source)  # no identifier in the message
        raise (OSError if isinstance(exc, OSError) else ValueError)(scrubbed) from None


def _run_job(job: Job, settings: RunSettings, source: object, start: float, written: list[Path]) -> ImageEntry:
    segmenter, out_dir, kinds = settings.segmenter, settings.out_dir, settings.kinds
    if source is None and "dicom-seg" in kinds:
        raise ValueError(f"{job.source}: --save dicom-seg needs a DICOM input, this is not one")
    if job.image is None:
        image = read_image(job.path)
    else:
        image = job.image
        write_image(out_dir / f"{job.stem}_input.png", image)
    report = None if settings.quality == "off" else assess_image(image)
    if report is not None and report.rejected and settings.quality == "refuse":
        entry = image_entry(job, image)
        entry.refused, entry.quality = True, rounded(report)
        return entry
    result = segmenter.segment(image, settings.fov)
    seg_name = f"{job.stem}{dicom.SEG_SUFFIX}"
    if "dicom-seg" in kinds:  # first: it is the output most likely to fail, on the source's header
        dicom.write_segmentation(out_dir / seg_name, source, result.mask, segmenter.bundle.root.name)
        written.append(out_dir / seg_name)
    outputs = save_outputs(out_dir, job.stem, image, result, kinds, written)
    if "dicom-seg" in kinds:
        outputs["dicom-seg"] = seg_name
    entry = image_entry(job, image)
    entry.backend, entry.precision = segmenter.backend.name, segmenter.backend.precision
    entry.seconds = round(time.perf_counter() - start, 4)
    entry.vessel_fraction = round(result.vessel_fraction, 6)
    entry.scale = result.scale.to_dict()
    entry.timings = {k: round(v, 4) for k, v in result.timings.items()}
    entry.outputs = outputs
    if report is not None:
        entry.quality = rounded(assess_scale(assess_vessels(report, result.mask, result.fov), result.scale))
    if source is not None:
        identifiers = dicom.dicom_identifiers(source) if settings.keep_identifiers else {}
        entry.dicom = dicom.dicom_summary(source) | identifiers
    if job.truth is not None:
        entry.demo_scores = demo_scores(job, result.mask)
        truth = (job.truth, result.mask, job.truth_fov, entry.demo_scores)
        outputs.update(write_demo_pictures(out_dir, job.stem, image, *truth))
    return entry


def image_entry(job: Job, image: np.ndarray) -> ImageEntry:
    """The entry's description of the input image (``channels``: what the file stores, alpha included)."""
    stored = stored_channels(job.path) if job.path is not None else None
    return ImageEntry(
        file=job.source,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        channels=stored or (1 if image.ndim == 2 else int(image.shape[2])),
        bit_depth=int(image.dtype.itemsize * 8),
    )


def one_line(text: str) -> str:
    """``text`` as one line: lines joined by a space, OpenCV's ``>`` quote marks dropped (C++: oneLine)."""
    return " ".join(line.strip().lstrip(">").strip() for line in text.splitlines() if line.strip(" >"))


def failure_entry(source: str, exc: Exception) -> FailureEntry:
    """The summary's failure entry for ``exc``; printed to stderr with the file named once.

    An ``OSError`` (disk full, permissions, an I/O error) is marked ``transient: true``: the image itself may
    be fine, and watch mode tries it again.
    """
    reason = str(exc) if isinstance(exc, EXPECTED_ERRORS) else f"{exc.__class__.__name__}: {exc}"
    if isinstance(exc, cv2.error):  # OpenCV's five-line text: its own description, on one line
        reason = f"OpenCV: {one_line(getattr(exc, 'err', '') or str(exc))}"
    reason = one_line(reason)
    named = reason if source in reason else f"{source}: {reason}"
    tqdm.write(f"{PROG}: {named}", file=sys.stderr)
    return FailureEntry(source, reason, transient=isinstance(exc, OSError))


def segment_job(job: Job, settings: RunSettings) -> tuple[ImageEntry | None, FailureEntry | None]:
    """:func:`run_job` for batch loops: ``(entry, None)`` on success, ``(None, failure)`` when the image failed.

    Any exception is caught (one bad image must not stop a batch) and reported on stderr.
    """
    try:
        entry = run_job(job, settings)
    except Exception as exc:
        return None, failure_entry(job.source, exc)
    if entry.refused:
        tqdm.write(f"{PROG}: {job.source}: refused: {'; '.join(entry.quality['reasons'])}", file=sys.stderr)
    elif not settings.quiet:
        verdict = f", quality {entry.quality['verdict']}" if entry.quality is not None else ""
        tqdm.write(f"{job.source}: vessels {entry.vessel_fraction:.1%} of FOV, {entry.seconds:.2f} s{verdict}")
        if entry.demo_scores is not None:
            tqdm.write(demo_line(entry.demo_scores))
    return entry, None


def demo_line(scores: dict[str, float]) -> str:
    """The demo's score on the console: F1 (and MIoU) of its mask against the vessel tree it was drawn with."""
    return (
        f"demo score: F1 {scores['f1']:.3f}, MIoU {scores['miou']:.3f} against the drawn vessel tree "
        f"(inside the FOV; summary.json 'demo' has all scores); errors drawn in {DEMO_STEM}_errors.png "
        "(magenta: false positive, blue: missed)"
    )


def build_summary(settings: RunSettings, images: list[dict], failures: list[dict]) -> dict:
    """The content of ``summary.json``: run settings, one entry per image (refused ones too), every failure.

    ``images`` and ``failures`` in their JSON form (:meth:`ImageEntry.to_json`): watch mode reads them back.
    """
    segmenter = settings.segmenter
    summary = {
        "tool": PROG,
        "bundle": bundle_summary(segmenter),
        "backend": segmenter.backend.name,
        "precision": segmenter.backend.precision,
        "threshold": segmenter.threshold,
        "fov": settings.fov_setting,
        "quality": settings.quality,
        "succeeded": sum(1 for e in images if not e.get("refused")),
        "refused": sum(1 for e in images if e.get("refused")),
        "failed": len(failures),
        "images": images,
        "failures": failures,
    }
    providers = getattr(segmenter.backend, "providers", None)
    if providers:  # ONNX Runtime: the execution providers that actually loaded
        summary["providers"] = list(providers)
    demo = [e["demo_scores"] for e in images if "demo_scores" in e]
    if demo:
        summary["demo"] = demo[0]
    return summary


def bundle_summary(segmenter: Segmenter) -> dict:
    bundle, backend = segmenter.bundle, segmenter.backend
    return {
        "name": str(bundle.meta.get("name", bundle.root.name)),
        "path": str(bundle.root),
        "model_json_sha256": sha256_file(bundle.root / "model.json"),
        "model_file": backend.model_path.name,
        "model_sha256": sha256_file(backend.model_path),
    }


def setup(args: argparse.Namespace) -> RunSettings:
    """Everything that must succeed before the first image (else :class:`UsageError`, exit status 2).

    ``args``: the options of :func:`fundus_vessels.runtime.segment_options.add_segment_arguments`
    (``--threads`` is capped to the usable CPUs in place).
    """
    if args.watch is not None and (args.inputs or args.demo or args.report):
        raise UsageError("--watch IN takes no INPUT, no --demo and no --report (results.csv is kept up to date)")
    if not args.inputs and not args.demo and args.watch is None:
        raise UsageError("no INPUT given (or use --demo or --watch IN)")
    kinds = parse_save(args.save)
    imageio.set_max_pixels(args.max_pixels)
    args.threads = usable_threads(args.threads, args.quiet)
    fov = parse_fov(args.fov)
    if args.measure and (hint := missing_extra("measure")):
        raise UsageError(f"--measure {hint}")
    if "dicom-seg" in kinds and (hint := missing_extra("clinic", ("pydicom", "highdicom"))):
        raise UsageError(f"--save dicom-seg {hint}")
    clash = input_folder_clash(args.output_dir, args.inputs)
    if clash:
        raise UsageError(clash)
    prepare_output_dir(args.output_dir)
    try:
        segmenter = Segmenter(
            args.model,
            args.backend,
            args.precision,
            args.threads,
            args.batch,
            args.threshold,
            args.checkpoint,
            url=args.url,
            scale=args.scale,
        )
    except (BundleError, BackendError) as exc:
        raise UsageError(str(exc)) from exc
    return RunSettings(
        segmenter=segmenter,
        out_dir=Path(args.output_dir),
        kinds=kinds,
        fov=fov,
        fov_setting=args.fov,
        quality=args.quality,
        keep_identifiers=args.keep_identifiers,
        quiet=args.quiet,
        measure=args.measure,
    )
