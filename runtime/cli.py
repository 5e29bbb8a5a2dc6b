"""``fundus-infer``: segment the vessels of fundus photographs with a model bundle.

Writes ``<stem>_mask.png`` (0/255), ``<stem>_prob.png`` (round(p*255)), ``<stem>_overlay.png`` and
``summary.json`` into the output folder. Exit status: 0 all images done, 1 some failed,
2 usage, bundle or output-folder error, plus 4 when ``--quality refuse`` refused some image
(4: refused only, 5: refused and failed). The C++ ``fundus-infer`` follows the same contract.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tqdm import tqdm

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.allocator import keep_freed_image_memory
from fundus_vessels.runtime.cli_common import new_parser
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.jobs import (
    PROG,
    RunSettings,
    UsageError,
    build_summary,
    collect_jobs,
    failure_entry,
    job_outputs,
    one_line,
    segment_job,
    setup,
)
from fundus_vessels.runtime.outputs_guard import OutputPlan
from fundus_vessels.runtime.results_table import write_results
from fundus_vessels.runtime.segment_options import add_segment_arguments

__all__ = ["PROG", "UsageError", "build_parser", "main"]


EXAMPLES = [
    "fundus-infer --demo -o out/demo                      # a synthetic photograph, scored against its drawn vessels",
    "fundus-infer photo.jpg more_photos/ -o out           # the default bundle",
    "fundus-infer photos/ -o out --model unet-drive --quality refuse",
    "fundus-infer --watch /clinic/export -o out --save mask,dicom-seg",
    "fundus-infer --self-test -o selftest                 # every backend here vs ONNX Runtime CPU FP32",
]
EXIT_CODES = {
    ExitStatus.OK: "every image segmented",
    ExitStatus.FAILED: "some image failed (named on stderr and in summary.json; the batch goes on)",
    ExitStatus.USAGE: "usage, bundle or output-folder error (nothing ran), or a missing extra",
    ExitStatus.REFUSED: "--quality refuse refused some image (5: refused and failed)",
}


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
    keep_freed_image_memory()
    try:
        settings = setup(args)
        held = lock.acquire(args.output_dir, PROG)
    except (UsageError, lock.OutputFolderBusy) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    try:
        if args.watch is not None:
            from fundus_vessels.runtime.watch import watch_command

            return watch_command(args, settings)
        return run_batch(args, settings)
    finally:
        lock.release(args.output_dir, held)


def run_batch(args: argparse.Namespace, settings: RunSettings) -> int:
    """Segment every INPUT (and the demo) into the locked output folder; returns the exit status."""
    jobs, failures = collect_jobs(args.inputs, args.demo)
    for failure in failures:
        print(f"{PROG}: {failure['file']}: {failure['error']}", file=sys.stderr)
    images = []
    plan = OutputPlan(settings.out_dir, [job.path for job in jobs if job.path is not None])
    for job in tqdm(jobs, disable=settings.quiet or len(jobs) < 2, unit="img", file=sys.stderr):
        refusal = plan.claim(job.source, job.stem, job_outputs(job, settings.kinds, settings.measure))
        if refusal is not None:
            failures.append(failure_entry(job.source, ValueError(refusal)).to_json())
            continue
        entry, failure = segment_job(job, settings)
        if failure is None:
            images.append(entry.to_json())
        else:
            failures.append(failure.to_json())

    if settings.measure:  # loads scikit-image and skan (the 'measure' extra) only when asked
        from fundus_vessels.runtime.measure.infer import measure_infer_outputs

        measure_infer_outputs(args, images, failures)
    summary = build_summary(settings, images, failures)
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
        return ExitStatus.USAGE
    if not args.quiet:
        counts = f"{summary['succeeded']} segmented, {summary['refused']} refused, {summary['failed']} failed"
        print(f"{counts} -> {args.output_dir / 'summary.json'}", file=sys.stderr)
    return ExitStatus.of_run(summary["failed"], summary["refused"])
