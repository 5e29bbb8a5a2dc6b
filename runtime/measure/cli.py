"""``fundus-measure``: vessel measurements from vessel maps (fundus-infer folders or mask files).

Writes ``measurements.csv`` (one row per image), ``segments.csv`` (one row per segment),
``summary.json`` and ``<stem>_measure.png`` into the output folder. Exit status: 0 all measured,
1 some failed, 2 usage or output-folder error. The measuring itself is
:class:`~fundus_vessels.runtime.measure.recorder.Recorder`'s (``fundus-infer --measure`` uses it too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.cli_common import add_output_argument, new_parser
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import missing_extra
from fundus_vessels.runtime.imageio import ImageReadError, write_json
from fundus_vessels.runtime.measure.arguments import add_unit_arguments
from fundus_vessels.runtime.measure.outputs import MEASUREMENTS_CSV, PICTURE_SUFFIX
from fundus_vessels.runtime.measure.recorder import PROG, Recorder
from fundus_vessels.runtime.measure.sources import collect_sources, load
from fundus_vessels.runtime.outputs_guard import OutputPlan, printable

__all__ = ["PROG", "Recorder", "build_parser", "main"]
EXPECTED_ERRORS = (ImageReadError, ValueError, OSError)


EXAMPLES = [
    "fundus-measure out/ -o meas/                       # a fundus-infer folder (Python or C++): FOV as the run had it",
    "fundus-measure masks/*.png -o meas/ --fov fov.png --pixel-size-um 25",
]
EXIT_CODES = {
    ExitStatus.OK: "every vessel map measured",
    ExitStatus.FAILED: "some map failed (named on stderr and in summary.json; the batch goes on)",
    ExitStatus.USAGE: "usage or output-folder error",
}


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, "Measure retinal vessel maps (formulas: docs/measure.md).", EXAMPLES, EXIT_CODES)
    parser.add_argument(
        "inputs", nargs="+", metavar="MASK_OR_OUTDIR", help="fundus-infer output folders, masks, folders"
    )
    add_output_argument(parser, "output folder: measurements.csv, segments.csv, summary.json, <stem>_measure.png")
    parser.add_argument(
        "--fov", default="auto", metavar="auto|none|MASK_FILE", help="auto: as fundus-infer had it (bare masks: none)"
    )
    add_unit_arguments(parser)
    parser.add_argument("--no-picture", action="store_true", help="do not write <stem>_measure.png")
    parser.add_argument("--quiet", action="store_true", help="no per-image lines")
    return parser


def check_output_dir(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot take fundus-measure's outputs, or None."""
    summary = out_dir / "summary.json"
    if summary.is_file():
        try:
            tool = json.loads(summary.read_text()).get("tool")
        except (ValueError, AttributeError):
            tool = None
        if tool != PROG:
            return f"{out_dir}: holds another tool's summary.json ({tool}); choose another -o"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{out_dir}: cannot create the output folder ({exc.strerror or exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``fundus-measure``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    problem = missing_extra("measure") or check_output_dir(args.output_dir)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return ExitStatus.USAGE
    try:
        held = lock.acquire(args.output_dir, PROG)
    except lock.OutputFolderBusy as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    try:
        return measure_all(args)
    finally:
        lock.release(args.output_dir, held)


def measure_all(args: argparse.Namespace) -> int:
    """Measure every mask of the INPUTs into the locked output folder; returns the exit status."""
    sources, failures = collect_sources(args.inputs)
    for failure in failures:
        print(f"{PROG}: {failure['file']}: {failure['error']}", file=sys.stderr)
    recorder = Recorder(args.pixel_size_um, args.camera_fov_deg, not args.no_picture)
    images = []
    plan = OutputPlan(args.output_dir, [s.mask_path for s in sources])
    picture = [] if args.no_picture else [f"{{}}{PICTURE_SUFFIX}"]
    for source in sources:
        try:
            refusal = plan.claim(printable(source.mask_path), source.stem, [p.format(source.stem) for p in picture])
            if refusal is not None:
                raise ValueError(refusal)
            mask, fov, fov_source = load(source, args.fov)
            figures = recorder.measure(
                source.stem, mask, fov, args.output_dir, file=str(source.mask_path), fov_source=fov_source
            )
        except Exception as exc:  # one bad mask must not stop the batch
            reason = str(exc) if isinstance(exc, EXPECTED_ERRORS) else f"{exc.__class__.__name__}: {exc}"
            shown = printable(source.mask_path)
            failures.append({"file": shown, "error": reason})
            print(f"{PROG}: {reason if shown in reason else f'{shown}: {reason}'}", file=sys.stderr)
            continue
        images.append(figures)
        if not args.quiet:
            print(
                f"{printable(source.mask_path)}: density {figures['vessel_density']:.3f}, "
                f"{figures['segment_count']} segments",
                file=sys.stderr,
            )
    try:
        recorder.write_tables(args.output_dir)
        write_json(
            args.output_dir / "summary.json",
            {"tool": PROG, "succeeded": len(images), "failed": len(failures), "images": images, "failures": failures},
        )
    except OSError as exc:
        print(f"{PROG}: error: {args.output_dir}: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    if not args.quiet:
        print(
            f"{len(images)} measured, {len(failures)} failed -> {args.output_dir / MEASUREMENTS_CSV}", file=sys.stderr
        )
    return ExitStatus.of_run(len(failures))
