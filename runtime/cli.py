"""``fundus-infer``: segment the vessels of fundus photographs with a model bundle.

Writes ``<stem>_mask.png`` (0/255), ``<stem>_prob.png`` (round(p*255)), ``<stem>_overlay.png`` and
``summary.json`` into the output folder. Exit status: 0 all images done, 1 some failed,
2 usage, bundle or output-folder error, plus 4 when ``--quality refuse`` refused some image
(4: refused only, 5: refused and failed). The C++ ``fundus-infer`` follows the same contract.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from fundus_vessels.runtime import dicom, imageio, lock
from fundus_vessels.runtime.backends import BACKENDS, PRECISIONS, BackendError
from fundus_vessels.runtime.bundle import (
    DEFAULT_BUNDLE,
    DEFAULT_MODEL,
    BundleError,
    bundle_path,
    sha256_file,
    shipped_names,
)
from fundus_vessels.runtime.cli_common import add_output_argument, new_parser
from fundus_vessels.runtime.extras import missing_extra
from fundus_vessels.runtime.image_header import stored_channels
from fundus_vessels.runtime.imageio import (
    ImageReadError,
    list_images,
    read_binary_mask,
    read_image,
    write_image,
    write_json,
)
from fundus_vessels.runtime.inference import DEFAULT_BATCH
from fundus_vessels.runtime.measure.arguments import add_infer_arguments
from fundus_vessels.runtime.metrics import ConfusionMatrix
from fundus_vessels.runtime.outputs import DICOM_KINDS, SAVE_KINDS, save_outputs
from fundus_vessels.runtime.outputs_guard import OutputPlan, input_folder_clash, output_names, printable
from fundus_vessels.runtime.pictures import write_demo_pictures
from fundus_vessels.runtime.pipeline import FovSpec, Segmenter
from fundus_vessels.runtime.quality import QUALITY_MODES, assess_image, assess_scale, assess_vessels, rounded
from fundus_vessels.runtime.results_table import write_results
from fundus_vessels.runtime.scale import parse_scale
from fundus_vessels.runtime.synthetic import make_synthetic_fundus
from tqdm import tqdm

PROG = "fundus-infer"
# failures whose message already says what is wrong; others are reported with their type
EXPECTED_ERRORS = (ImageReadError, ValueError, OSError, BackendError)
DEMO_STEM = "demo"
EXIT_REFUSED = 4  # added to the exit status when --quality refuse refused an image


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


def probability(text: str) -> float:
    """argparse type: a finite number in [0, 1] (nan and inf refused), as the C++ --threshold."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1] (got {text!r})")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, as the C++ --threads and --batch."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


EXAMPLES = [
    "fundus-infer --demo -o out/demo                      # a synthetic photograph, scored against its drawn vessels",
    "fundus-infer photo.jpg more_photos/ -o out           # the default bundle",
    "fundus-infer photos/ -o out --model unet-drive --quality refuse",
    "fundus-infer --watch /clinic/export -o out --save mask,dicom-seg",
    "fundus-infer --self-test -o selftest                 # every backend here vs ONNX Runtime CPU FP32",
]
EXIT_CODES = {
    0: "every image segmented",
    1: "some image failed (named on stderr and in summary.json; the batch goes on)",
    2: "usage, bundle or output-folder error (nothing ran), or a missing extra",
    4: "--quality refuse refused some image (5: refused and failed)",
}


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that decide what a segmentation run reads and writes (fundus-infer and fundus-batch)."""
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders of images")
    add_output_argument(parser, "output folder: <stem>_mask.png, _prob.png, _overlay.png, summary.json")
    parser.add_argument(
        "--model",
        type=bundle_path,
        default=DEFAULT_BUNDLE,  # the shipped one, whatever folders the working directory holds
        metavar="BUNDLE",
        help=f"bundle folder, or the name of a shipped bundle ({', '.join(shipped_names())}; default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: a TensorRT engine built for this GPU if there is one, else ONNX Runtime",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="which model file of the bundle runs (fp16 is for GPUs)"
    )
    parser.add_argument(
        "--fov",
        default="auto",
        metavar="auto|none|MASK_FILE",
        help="field-of-view mask; tiles holding no FOV pixel are not run (probability 0 there)",
    )
    parser.add_argument(
        "--scale",
        type=scale_arg,
        default="auto",
        metavar="auto|none|FACTOR",
        help="resample so the FOV diameter matches the model's reference (auto), not at all (none), "
        "or by a fixed factor; outputs keep the input's size",
    )
    parser.add_argument(
        "--threshold", type=probability, metavar="T", help="vessel if probability >= T (default: model.json's)"
    )
    parser.add_argument(
        "--quality",
        choices=QUALITY_MODES,
        default="flag",
        help="image quality gate: flag (segment, record the verdict), refuse (no vessel map for a rejected image), off",
    )
    parser.add_argument(
        "--save",
        default=",".join(SAVE_KINDS),
        metavar="LIST",
        help="comma-separated outputs: mask, prob, overlay, dicom-seg",
    )
    parser.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, metavar="N", help="tiles per model call")
    parser.add_argument(
        "--threads", type=positive_int, metavar="N", help="inference threads (default: the library's, all cores)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="training checkpoint (torch backend only; default: none)"
    )
    parser.add_argument(
        "--url", help="Triton server, [grpc://|http://]host:port[/model] (triton backend only; default: none)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    parser.add_argument("--report", action="store_true", help="also write OUTDIR/report.html, self-contained")
    add_infer_arguments(parser)  # --measure, --pixel-size-um, --camera-fov-deg
    parser.add_argument("--keep-identifiers", action="store_true", help="DICOM patient/study IDs into summary.json")
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=imageio.DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse an image whose header declares more pixels, before decoding it (default: 100000000)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, "Segment retinal vessels in fundus photographs.", EXAMPLES, EXIT_CODES)
    add_segment_arguments(parser)
    parser.add_argument("--demo", action="store_true", help="also segment a synthetic fundus with a known vessel tree")
    parser.add_argument(
        "--watch", type=Path, metavar="IN", help="keep segmenting every image that appears in IN (default: off)"
    )
    parser.add_argument("--watch-poll", action="store_true", help="--watch by polling (network shares)")
    parser.add_argument(
        "--settle", type=float, default=2.0, metavar="SECONDS", help="--watch: seconds a file must stay unchanged"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="run every backend/precision available here vs ONNX Runtime CPU FP32; writes OUTDIR/self-test.json",
    )
    return parser


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


def scale_arg(value: str) -> str | float:
    """``--scale``: auto, none or a factor (argparse type; the message names the flag)."""
    try:
        return parse_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--scale ")) from None


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


def demo_scores(job: Job, mask: np.ndarray) -> dict[str, float]:
    """Scores of the demo's prediction against the vessel tree it was drawn with (inside its FOV)."""
    matrix = ConfusionMatrix()
    matrix.update(job.truth, mask, job.truth_fov)
    return matrix.compute()


def run_job(
    job: Job,
    segmenter: Segmenter,
    fov: FovSpec,
    out_dir: Path,
    kinds: tuple[str, ...],
    keep_identifiers: bool = False,
    quality: str = "flag",
) -> dict:
    """Read, grade, segment and write one image; returns its summary entry (raises on failure).

    ``quality`` (:data:`QUALITY_MODES`): ``flag`` adds the gate's verdict to the entry, ``refuse``
    also writes nothing for a rejected image (entry ``refused: true``), ``off`` skips the gate.
    """
    start = time.perf_counter()
    source = dicom.read_header(job.path) if job.path is not None and dicom.is_dicom(job.path) else None
    written: list[Path] = []
    try:
        return _run_job(job, segmenter, fov, out_dir, kinds, keep_identifiers, quality, source, start, written)
    except Exception as exc:
        for path in written:  # a failed image leaves none of its outputs behind
            path.unlink(missing_ok=True)
        if source is None or keep_identifiers:
            raise
        scrubbed = dicom.redact(str(exc), source)  # no identifier in the message
        raise (OSError if isinstance(exc, OSError) else ValueError)(scrubbed) from None


def _run_job(
    job: Job,
    segmenter: Segmenter,
    fov: FovSpec,
    out_dir: Path,
    kinds: tuple[str, ...],
    keep_identifiers: bool,
    quality: str,
    source: object,
    start: float,
    written: list[Path],
) -> dict:
    if source is None and "dicom-seg" in kinds:
        raise ValueError(f"{job.source}: --save dicom-seg needs a DICOM input, this is not one")
    if job.image is None:
        image = read_image(job.path)
    else:
        image = job.image
        write_image(out_dir / f"{job.stem}_input.png", image)
    report = None if quality == "off" else assess_image(image)
    if report is not None and report.rejected and quality == "refuse":
        return {**image_entry(job, image), "refused": True, "quality": rounded(report), "outputs": {}}
    result = segmenter.segment(image, fov)
    seg_name = f"{job.stem}{dicom.SEG_SUFFIX}"
    if "dicom-seg" in kinds:  # first: it is the output most likely to fail, on the source's header
        dicom.write_segmentation(out_dir / seg_name, source, result.mask, segmenter.bundle.root.name)
        written.append(out_dir / seg_name)
    outputs = save_outputs(out_dir, job.stem, image, result, kinds, written)
    if "dicom-seg" in kinds:
        outputs["dicom-seg"] = seg_name
    entry = {
        **image_entry(job, image),
        "backend": segmenter.backend.name,
        "precision": segmenter.backend.precision,
        "seconds": round(time.perf_counter() - start, 4),
        "vessel_fraction": round(result.vessel_fraction, 6),
        "scale": result.scale.to_dict(),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "outputs": outputs,
    }
    if report is not None:
        entry["quality"] = rounded(assess_scale(assess_vessels(report, result.mask, result.fov), result.scale))
    if source is not None:
        entry["dicom"] = dicom.dicom_summary(source) | (dicom.dicom_identifiers(source) if keep_identifiers else {})
    if job.truth is not None:
        entry["demo_scores"] = demo_scores(job, result.mask)
        truth = (job.truth, result.mask, job.truth_fov, entry["demo_scores"])
        outputs.update(write_demo_pictures(out_dir, job.stem, image, *truth))
    return entry


def image_entry(job: Job, image: np.ndarray) -> dict:
    """The summary entry's description of the input image (``channels``: what the file stores, alpha included)."""
    stored = stored_channels(job.path) if job.path is not None else None
    return {
        "file": job.source,
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "channels": stored or (1 if image.ndim == 2 else int(image.shape[2])),
        "bit_depth": int(image.dtype.itemsize * 8),
    }


def one_line(text: str) -> str:
    """``text`` as one line: lines joined by a space, OpenCV's ``>`` quote marks dropped (C++: oneLine)."""
    return " ".join(line.strip().lstrip(">").strip() for line in text.splitlines() if line.strip(" >"))


def failure_entry(source: str, exc: Exception) -> dict:
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
    entry = {"file": source, "error": reason}
    return entry | {"transient": True} if isinstance(exc, OSError) else entry


def segment_job(
    job: Job,
    segmenter: Segmenter,
    fov: FovSpec,
    out_dir: Path,
    kinds: tuple[str, ...],
    quiet: bool = False,
    keep_identifiers: bool = False,
    quality: str = "flag",
) -> tuple[dict | None, dict | None]:
    """:func:`run_job` for batch loops: ``(entry, None)`` on success, ``(None, failure)`` when the image failed.

    Any exception is caught (one bad image must not stop a batch) and reported on stderr.
    """
    try:
        entry = run_job(job, segmenter, fov, out_dir, kinds, keep_identifiers, quality)
    except Exception as exc:
        return None, failure_entry(job.source, exc)
    if entry.get("refused"):
        tqdm.write(f"{PROG}: {job.source}: refused: {'; '.join(entry['quality']['reasons'])}", file=sys.stderr)
    elif not quiet:
        verdict = f", quality {entry['quality']['verdict']}" if "quality" in entry else ""
        tqdm.write(f"{job.source}: vessels {entry['vessel_fraction']:.1%} of FOV, {entry['seconds']:.2f} s{verdict}")
        if "demo_scores" in entry:
            tqdm.write(demo_line(entry["demo_scores"]))
    return entry, None


def demo_line(scores: dict[str, float]) -> str:
    """The demo's score on the console: F1 (and MIoU) of its mask against the vessel tree it was drawn with."""
    return (
        f"demo score: F1 {scores['f1']:.3f}, MIoU {scores['miou']:.3f} against the drawn vessel tree "
        f"(inside the FOV; summary.json 'demo' has all scores); errors drawn in {DEMO_STEM}_errors.png "
        "(magenta: false positive, blue: missed)"
    )


def build_summary(
    segmenter: Segmenter, fov: str, images: list[dict], failures: list[dict], quality: str = "flag"
) -> dict:
    """The content of ``summary.json``: run settings, one entry per image (refused ones too), every failure."""
    summary = {
        "tool": PROG,
        "bundle": bundle_summary(segmenter),
        "backend": segmenter.backend.name,
        "precision": segmenter.backend.precision,
        "threshold": segmenter.threshold,
        "fov": fov,
        "quality": quality,
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


def setup(args: argparse.Namespace) -> tuple[Segmenter, FovSpec, tuple[str, ...]]:
    """Everything that must succeed before the first image (else exit status 2)."""
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
    return segmenter, fov, kinds


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (numpy, ...) as one line of ours, not Python's two-line report."""
    tqdm.write(f"{PROG}: warning: {one_line(str(message))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``fundus-infer``; returns the exit status."""
    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = previous


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.self_test:
        from fundus_vessels.runtime.selftest import command

        return command(args.model, args.output_dir, args.threads, PROG)
    try:
        segmenter, fov, kinds = setup(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        held = lock.acquire(args.output_dir, PROG)
    except lock.OutputFolderBusy as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.watch is not None:
            from fundus_vessels.runtime.watch import watch_command

            return watch_command(args, segmenter, fov, kinds)
        return run_batch(args, segmenter, fov, kinds)
    finally:
        lock.release(args.output_dir, held)


def job_outputs(job: Job, kinds: tuple[str, ...], measure: bool) -> list[str]:
    """The files ``job`` writes into the output folder (the demo also writes its drawn photograph)."""
    names = output_names(job.stem, kinds, measure, dicom.SEG_SUFFIX)
    return names if job.path is not None else [*names, f"{job.stem}_input.png"]


def run_batch(args: argparse.Namespace, segmenter: Segmenter, fov: FovSpec, kinds: tuple[str, ...]) -> int:
    """Segment every INPUT (and the demo) into the locked output folder; returns the exit status."""
    jobs, failures = collect_jobs(args.inputs, args.demo)
    for failure in failures:
        print(f"{PROG}: {failure['file']}: {failure['error']}", file=sys.stderr)
    images = []
    plan = OutputPlan(args.output_dir, [job.path for job in jobs if job.path is not None])
    for job in tqdm(jobs, disable=args.quiet or len(jobs) < 2, unit="img", file=sys.stderr):
        refusal = plan.claim(job.source, job.stem, job_outputs(job, kinds, args.measure))
        if refusal is not None:
            failures.append(failure_entry(job.source, ValueError(refusal)))
            continue
        entry, failure = segment_job(
            job, segmenter, fov, args.output_dir, kinds, args.quiet, args.keep_identifiers, args.quality
        )
        if failure is None:
            images.append(entry)
        else:
            failures.append(failure)

    if args.measure:  # loads scikit-image and skan (the 'measure' extra) only when asked
        from fundus_vessels.runtime.measure.infer import measure_infer_outputs

        measure_infer_outputs(args, images, failures)
    summary = build_summary(segmenter, args.fov, images, failures, args.quality)
    return write_run_files(args, summary)


def write_run_files(args: argparse.Namespace, summary: dict) -> int:
    """summary.json, results.csv (and with ``--report`` report.html) into OUTDIR; returns the exit status."""
    try:
        write_json(args.output_dir / "summary.json", summary)
        write_results(args.output_dir, summary, args.measure)
        if args.report:
            from fundus_vessels.runtime.report_html import write_report

            write_report(args.output_dir, summary, args.measure)
    except OSError as exc:
        print(f"{PROG}: error: {args.output_dir}: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        counts = f"{summary['succeeded']} segmented, {summary['refused']} refused, {summary['failed']} failed"
        print(f"{counts} -> {args.output_dir / 'summary.json'}", file=sys.stderr)
    return (1 if summary["failed"] else 0) + (EXIT_REFUSED if summary["refused"] else 0)
