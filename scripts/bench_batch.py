"""Images per second of ``fundus-batch`` with 1 and 2 workers here, and what N nodes would take.

``python scripts/bench_batch.py INPUT... [--configs 1x2,1x1,2x1] [--archive 135000]``:
one local Ray instance (started once, not timed), then a fresh output folder per configuration
(``WORKERSxTHREADS``), timed from submit to the last row. The projection is arithmetic on the
best measured rate, stated with its assumptions, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def parse_configs(value: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in item.split("x")) for item in value.split(",")]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/bench_batch.py", description=__doc__)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--configs", type=parse_configs, default=parse_configs("1x1,1x2,2x1"), help="WORKERSxTHREADS")
    parser.add_argument("--archive", type=int, default=135_000, help="images in the archive to project for")
    parser.add_argument("--nodes", default="1,4,16", help="cluster sizes to project for")
    args = parser.parse_args(argv)

    import ray

    from fundus_vessels.runtime.batch.cli import main as batch_main

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    results = []
    with tempfile.TemporaryDirectory(prefix="fundus-batch-bench-") as tmp:
        for workers, threads in args.configs:
            out = Path(tmp) / f"{workers}x{threads}"
            start = time.perf_counter()
            batch_main([*args.inputs, "-o", str(out), "--quiet", "--workers", str(workers), "--threads", str(threads)])
            seconds = time.perf_counter() - start
            done = json.loads((out / "summary.json").read_text())["succeeded"]
            results.append({"workers": workers, "threads": threads, "images": done, "seconds": round(seconds, 2)})
            print(
                f"{workers} worker(s) x {threads} thread(s): {done} images, {seconds:.1f} s, {done / seconds:.2f} img/s"
            )
    ray.shutdown()
    best = max(results, key=lambda r: r["images"] / r["seconds"])
    rate, cores = best["images"] / best["seconds"], os.cpu_count()
    print(
        f"\nprojection from the best rate here, {rate:.2f} img/s on {cores} cores ({rate / cores:.3f} img/s per core):"
    )
    for nodes in (int(n) for n in args.nodes.split(",")):
        hours = args.archive / (rate * nodes) / 3600
        print(f"  {nodes:>3} node(s) like this one: {args.archive} / ({rate:.2f} x {nodes}) s = {hours:.1f} h")
    print("  (assumes linear scaling: every node reads inputs and writes outputs on shared storage fast enough,")
    print("   images of the measured size, no other load; the driver only collects one small row per image)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
