"""``fundus-batch INPUTS -o OUT [--ray-address ADDR] [--workers N] [--measure]``: fundus-infer on Ray Data.

Takes every option of ``fundus-infer`` (same options, same :func:`~fundus_vessels.runtime.jobs.setup`)
and writes the same files with the same bytes, plus ``results.parquet`` (one row per input, see
:mod:`fundus_vessels.runtime.batch.table`). Ray Data runs ``map_batches`` over an actor pool:
``--workers`` actors, each with one model session and ``--threads`` CPUs (default: the cluster's
CPUs shared out, so actors never oversubscribe cores). Local Ray by default; ``--ray-address``
joins a cluster (outputs and inputs must then be on storage every node sees). Restarted with the
same command after a kill, it redoes only what is not verifiably done. Exit status as
``fundus-infer``: 0 all done, 1 some failed, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.batch.inputs import InputListError, expand_inputs
from fundus_vessels.runtime.batch.table import BatchLockedError, Journal, locked, read_rows, write_table
from fundus_vessels.runtime.bundle import sha256_file
from fundus_vessels.runtime.cli_common import new_parser
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import missing_extra, run_with_extra
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.jobs import UsageError, build_summary, collect_jobs, job_outputs, parse_save, setup
from fundus_vessels.runtime.outputs_guard import OutputPlan
from fundus_vessels.runtime.results_table import write_results
from fundus_vessels.runtime.segment_options import add_segment_arguments

PROG = "fundus-batch"
# options that decide where and how fast the work runs, not what it produces
RUN_ONLY = {"inputs", "output_dir", "ray_address", "workers", "threads", "quiet", "demo", "report"}


EXAMPLES = [
    "fundus-batch ARCHIVE/ -o out                          # a local Ray, one actor per core",
    "fundus-batch list.csv more.parquet -o out --ray-address HEAD:6379 --workers 16",
    "fundus-batch ARCHIVE/ -o out --measure                # plus measurements.csv, segments.csv",
]
EXIT_CODES = {
    ExitStatus.OK: "every image segmented (or verifiably done by an earlier run)",
    ExitStatus.FAILED: "some image failed (a row with its reason in results.parquet; the run goes on)",
    ExitStatus.USAGE: (
        "usage, bundle or output-folder error, OUT locked by another fundus-batch, or the 'ray' extra missing"
    ),
}
# fundus-infer's options that fundus-batch has no use for, at the values the settings hash has always seen
INFER_ONLY_DEFAULTS = {"demo": False, "watch": None, "watch_poll": False, "settle": 2.0, "self_test": False}


def batch_parser() -> argparse.ArgumentParser:
    """``fundus-infer``'s segmentation options (not ``--demo``, ``--watch``, ``--self-test``) plus the Ray options."""
    parser = new_parser(PROG, "Segment an archive of fundus photographs on Ray Data (resumable).", EXAMPLES, EXIT_CODES)
    add_segment_arguments(parser)
    parser.set_defaults(**INFER_ONLY_DEFAULTS)
    parser.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: start a local one)")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="actors, one model session each (default: CPUs / threads)"
    )
    return parser


def settings_hash(args: argparse.Namespace, bundle_files: dict) -> str:
    """sha256 of everything that decides the outputs: the options and the bundle's files."""
    fov = args.fov if args.fov in ("auto", "none") else sha256_file(args.fov)
    options = {k: str(v) for k, v in sorted(vars(args).items()) if k not in RUN_ONLY} | {"fov": fov}
    payload = json.dumps({"options": options, "bundle": bundle_files}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def plan(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Tasks in input order (with each input's previous row) and the failures found before any run."""
    jobs, failures = collect_jobs(expand_inputs(args.inputs), demo=False)
    previous = read_rows(args.output_dir)
    tasks, kinds = [], parse_save(args.save)
    guard = OutputPlan(args.output_dir, [job.path for job in jobs if job.path is not None])
    for index, job in enumerate(jobs):
        # "path": the file as named on disk (a name that is not UTF-8 is reported as \xNN in "file")
        task = {"index": index, "file": job.source, "path": str(job.path), "stem": job.stem}
        task["prior"] = previous.get(job.source)
        refusal = guard.claim(job.source, job.stem, job_outputs(job, kinds, args.measure))
        if refusal is not None:  # fundus-infer's rule: no output over an input or over an earlier image's
            task["clash"] = refusal
        tasks.append(task)
    return tasks, failures


def start_ray(address: str | None, quiet: bool = False):
    """The ``ray`` module, connected: to ``address``, else to a new local instance (or the one running)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address or "local", include_dashboard=False, logging_level="ERROR", log_to_driver=not quiet)
    if quiet:  # Ray Data's "Running Dataset ..." INFO lines
        import logging

        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return ray


def share_cpus(ray, workers: int | None, threads: int | None) -> tuple[int, int]:
    """(actors, threads per actor) that fit the cluster's CPUs."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if threads is None:
        threads = max(1, cpus // workers) if workers else 1
    return (workers or max(1, cpus // threads)), threads


def driver_identity(args: argparse.Namespace) -> tuple[str, int] | None:
    """(host, pid) of this driver for a local Ray: its actors exit when it is gone (see SegmentWorker)."""
    return None if args.ray_address else (socket.gethostname(), os.getpid())


@contextlib.contextmanager
def ray_output_hidden(quiet: bool) -> Iterator[None]:
    """With ``--quiet``, what Ray and Ray Data print (INFO lines from Python loggers and from its C++ core,
    straight to file descriptor 2) is kept off the terminal; it is shown after all if the run fails."""
    if not quiet:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                sys.stderr.write(sink.read().decode("utf-8", "replace"))


def run_rows(args: argparse.Namespace, tasks: list[dict], settings: str, journal: Journal) -> list[dict]:
    """Rows of every task, from a Ray Data actor pool; each is journalled as it arrives."""
    ray = start_ray(args.ray_address, args.quiet)
    from fundus_vessels.runtime.batch.worker import SegmentWorker

    workers, args.threads = share_cpus(ray, args.workers, args.threads)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not args.quiet
    items = [{"task": json.dumps(t, sort_keys=True)} for t in tasks]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
        SegmentWorker,
        fn_constructor_kwargs={"args": args, "settings_sha256": settings, "driver": driver_identity(args)},
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(workers, max(1, len(items)))),
        num_cpus=args.threads,
    )
    rows = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        fresh = [json.loads(str(r)) for r in batch["row"]]
        journal.append(fresh)
        rows.extend(fresh)
    return rows


def write_measure_tables(out_dir, rows: list[dict]) -> None:
    """measurements.csv and segments.csv, as ``fundus-infer --measure`` writes them, from the rows' parts."""
    from fundus_vessels.runtime.measure.recorder import Recorder

    recorder = Recorder()
    for row in sorted(rows, key=lambda r: r["index"]):
        tables = json.loads(row.get("measure_tables") or '{"rows": [], "segments": []}')
        recorder.rows.extend(tables["rows"])
        recorder.segments.extend(tables["segments"])
    recorder.write_tables(out_dir)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.measure and "mask" not in args.save.split(","):
        raise UsageError("--measure measures the written mask: keep mask in --save")
    run_settings = setup(args)  # fails fast, before any Ray start, on what fundus-infer would refuse
    bundle_files = run_settings.segmenter.bundle.meta.get("files", {})
    settings = settings_hash(args, bundle_files)
    with lock.output_lock(args.output_dir, PROG), locked(args.output_dir):
        tasks, failures = plan(args)
        journal = Journal(args.output_dir)
        with ray_output_hidden(args.quiet):
            rows = run_rows(args, tasks, settings, journal) if tasks else []
        write_table(args.output_dir, rows)
        images = [json.loads(r["entry"]) for r in sorted(rows, key=lambda r: r["index"]) if r["entry"]]
        failures += [{"file": r["file"], "error": r["reason"]} for r in rows if r["status"] == "failed"]
        if args.measure:
            write_measure_tables(args.output_dir, rows)
        summary = build_summary(run_settings, images, failures)
        summary["tool"] = PROG
        write_json(args.output_dir / "summary.json", summary)
        write_results(args.output_dir, summary, args.measure)
        if args.report:
            from fundus_vessels.runtime.report_html import write_report

            write_report(args.output_dir, summary, args.measure)
        journal.remove()
    if not args.quiet:
        took = time.perf_counter() - start
        print(f"{len(images)} segmented, {len(failures)} failed in {took:.1f} s -> {args.output_dir}", file=sys.stderr)
    return ExitStatus.of_run(len(failures))


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``fundus-batch``; returns the exit status."""
    try:
        args = batch_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def guarded() -> int:
        try:
            return run(args)
        except (UsageError, InputListError, BatchLockedError, lock.OutputFolderBusy) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return ExitStatus.USAGE

    hint = missing_extra("ray", ("ray", "pyarrow"))
    if hint:  # before the output folder is touched; run_with_extra catches what this look-up cannot see
        print(f"{PROG}: {hint}", file=sys.stderr)
        return ExitStatus.USAGE
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    return run_with_extra(PROG, "ray", guarded)


if __name__ == "__main__":
    sys.exit(main())
