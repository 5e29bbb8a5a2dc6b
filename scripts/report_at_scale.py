"""Size and load time of report.html for a synthetic 5 000-input batch (docs/results/report_at_scale.json).

Segments a few DRIVE test photographs with ``fundus-infer --measure`` for real outputs, then makes a
summary of ``--images`` entries from them (each its own input name, a symlink to a photograph;
vessel fraction, seconds and measurements jittered; about 3 % refused and 2 % failed), writes
report.html from it and opens it in headless Chromium, which reports when the first page's
thumbnails have loaded (``#report-status``, ms since navigation start).

    python scripts/report_at_scale.py --data-root ../shared/data --out docs/results/report_at_scale.json
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.report_html import write_report

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu")


def real_run(data_root: Path, work: Path, count: int) -> dict:
    photos = sorted((data_root / "DRIVE" / "test" / "images").glob("*.tif"))[:count]
    out = work / "out"
    code = cli.main([*map(str, photos), "-o", str(out), "--measure", "--quiet"])
    if code not in (0, 1):
        raise SystemExit(f"fundus-infer exit {code}")
    return json.loads((out / "summary.json").read_text())


def synthetic_summary(summary: dict, work: Path, images: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    inputs = work / "inputs"
    inputs.mkdir()
    entries, failures = [], []
    for i in range(images):
        base = summary["images"][i % len(summary["images"])]
        link = inputs / f"img_{i:05d}.tif"
        link.symlink_to(Path(base["file"]).resolve())
        roll = rng.random()
        if roll < 0.02:
            failures.append({"file": str(link), "error": f"{link}: not a readable image (synthetic failure)"})
            continue
        entry = copy.deepcopy(base)
        entry["file"] = str(link)
        entry["seconds"] = round(base["seconds"] * rng.uniform(0.7, 1.6), 4)
        entry["vessel_fraction"] = round(base["vessel_fraction"] * rng.uniform(0.8, 1.2), 6)
        for key, value in list(entry.get("measurements", {}).items()):
            if isinstance(value, float):
                entry["measurements"][key] = value * rng.uniform(0.9, 1.1)
        if roll < 0.05:
            entry = {k: entry[k] for k in ("file", "width", "height", "channels", "bit_depth")}
            entry |= {"refused": True, "quality": {"verdict": "reject", "reasons": ["too dark"]}, "outputs": {}}
        entries.append(entry)
    return summary | {"images": entries, "failures": failures, "failed": len(failures)}


def chromium_load(binary: str, page: Path) -> dict:
    start = time.perf_counter()
    command = [binary, *FLAGS, "--dump-dom", page.resolve().as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True).stdout
    wall = time.perf_counter() - start
    match = re.search(r'<p id="report-status"([^>]*)>', dom)
    status = dict(re.findall(r'data-([\w-]+)="([^"]*)"', match.group(1))) if match else {}
    return {"chromium_wall_s": round(wall, 2), "status": status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--photos", type=int, default=4, help="DRIVE test photographs segmented for real")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        summary = synthetic_summary(real_run(args.data_root, work, args.photos), work, args.images)
        start = time.perf_counter()
        page = write_report(work / "out", summary, measure=True)
        result = {
            "inputs": args.images,
            "report_bytes": page.stat().st_size,
            "report_mib": round(page.stat().st_size / 2**20, 1),
            "write_s": round(time.perf_counter() - start, 1),
            "photo_size": f"{summary['images'][0]['width']}x{summary['images'][0]['height']}",
        }
        if binary:
            result["chromium"] = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
            result |= chromium_load(binary, page)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
