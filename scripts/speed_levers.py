"""fundus-infer end to end (read -> written mask, prob, overlay PNGs), each speed lever side by side.

    python scripts/speed_levers.py --images DRIVE/test/images BIG.jpg [--base-python PATH] [--base-cpp BIN]
        [--python-at [LABEL=]PYTHONPATH ...] [--cpp-opencv [LABEL=]BIN ...] [--only TEXT ...]
        [--big-copies N] [--rounds 3] [--out levers.json]

Every configuration runs as its own fundus-infer process on the same images, in turn, for
``--rounds`` rounds (this VM's speed drifts within minutes); a configuration's figure is the median
of fundus-infer's own per-image ``seconds`` (summary.json) over all rounds: the DRIVE photographs
pooled, and the last image (the 3504x2336 photograph) on its own. ``--big-copies N`` segments N
copies of it at the end, as a camera's export folder holds photographs of one size: the first copy
is the figure above (the model's first pass at that size), the median of the others goes into
``big_same_size``. Ratios are against the first configuration of the same runtime (the code
before, when ``--base-python`` / ``--base-cpp`` name it: a PYTHONPATH holding that checkout's
``fundus_vessels`` and its binary). ``--python-at [LABEL=]PYTHONPATH`` adds the Python runtime of
another checkout (a PYTHONPATH as for ``--base-python``); ``--cpp-opencv [LABEL=]BIN`` adds a
C++ binary built against another OpenCV (``cmake -DOpenCV_DIR=...``), named by LABEL (default:
"default", this checkout's) and the OpenCV version its ``--version`` prints; ``--only`` keeps the
configurations whose name contains one of the texts given. A development tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_backends import tiles_bundle  # scripts/: the bundle with whole-image passes off

from fundus_vessels.runtime.bundle import load_bundle

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "models" / "unet-multicamera"


def configurations(args: argparse.Namespace, tiles: Path) -> list[dict]:
    py = [sys.executable, "-m", "fundus_vessels.runtime"]
    cpp = [str(REPO / "build" / "fundus-infer")]
    configs = []
    if args.base_python:
        configs.append(
            {
                "name": "Python, the code before (--base-python)",
                "runtime": "py",
                "cmd": py,
                "pythonpath": args.base_python,
            }
        )
    for given in args.python_at:
        label, _, path = given.rpartition("=")
        configs.append({"name": f"Python {label or path}", "runtime": "py", "cmd": py, "pythonpath": path})
    configs += [
        {
            "name": "Python + parallel PNG (ORT, tiles)",
            "runtime": "py",
            "cmd": [*py, "--backend", "ort", "--model", str(tiles)],
        },
        {"name": "Python + whole-image (ORT)", "runtime": "py", "cmd": [*py, "--backend", "ort"]},
        {"name": "Python default (auto: OpenCV DNN, whole-image)", "runtime": "py", "cmd": py},
        {"name": "Python default, --threads 1", "runtime": "py", "cmd": [*py, "--threads", "1"]},
        {"name": "Python INT8 (ORT, tiles: fixed-shape file)", "runtime": "py", "cmd": [*py, "--precision", "int8"]},
    ]
    if args.base_cpp:
        configs.append({"name": "C++, the code before (--base-cpp)", "runtime": "cpp", "cmd": [str(args.base_cpp)]})
    configs += [
        {"name": "C++ + parallel PNG (tiles)", "runtime": "cpp", "cmd": [*cpp, "--model", str(tiles)]},
        {"name": "C++ + whole-image (default)", "runtime": "cpp", "cmd": cpp},
        {"name": "C++ default, --threads 1", "runtime": "cpp", "cmd": [*cpp, "--threads", "1"]},
    ]
    for given in args.cpp_opencv:
        label, _, binary = given.rpartition("=")
        name = f"C++ {label or 'default'}, OpenCV {opencv_version(Path(binary))}"
        configs.append({"name": name, "runtime": "cpp", "cmd": [binary]})
    if args.only:
        configs = [c for c in configs if any(text in c["name"] for text in args.only)]
    return configs


def opencv_version(binary: Path) -> str:
    """The OpenCV version a C++ fundus-infer reports (``...; OpenCV 4.14.0``)."""
    line = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return line.rsplit("OpenCV ", 1)[-1].split()[0].rstrip(";")


def run_once(config: dict, images: list[str], big: int) -> tuple[list[float], list[float]]:
    """One fundus-infer process: per-image seconds of the DRIVE photographs and of the ``big`` last ones."""
    env = dict(os.environ)
    if config.get("pythonpath"):
        env["PYTHONPATH"] = config["pythonpath"]
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([*config["cmd"], *images, "-o", out, "--quiet"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{config['name']}: {done.stderr.strip()[-500:]}")
        entries = json.loads((Path(out) / "summary.json").read_text())["images"]
    seconds = [e["seconds"] for e in entries]
    return seconds[:-big], seconds[-big:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", required=True, help="a folder of DRIVE-size photographs, then BIG")
    parser.add_argument("--base-python", help="PYTHONPATH of the code before (its fundus_vessels namespace)")
    parser.add_argument("--base-cpp", type=Path, help="fundus-infer binary built from the code before")
    parser.add_argument(
        "--python-at", nargs="*", default=[], metavar="[LABEL=]PYTHONPATH", help="Python runs of other checkouts"
    )
    parser.add_argument(
        "--cpp-opencv", nargs="*", default=[], metavar="[LABEL=]BIN", help="C++ binaries built on other OpenCVs"
    )
    parser.add_argument("--only", nargs="*", default=[], help="run only configurations whose name contains TEXT")
    parser.add_argument("--big-copies", type=int, default=1, help="segment N copies of the last image (default 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("levers.json"))
    args = parser.parse_args(argv)
    images = []
    for item in map(Path, args.images):
        images += sorted(str(p) for p in item.iterdir() if p.is_file()) if item.is_dir() else [str(item)]
    with tempfile.TemporaryDirectory() as folder:
        big = Path(images.pop())
        for copy in range(1, args.big_copies + 1):  # distinct names: fundus-infer refuses two outputs of one stem
            images.append(str(shutil.copyfile(big, Path(folder) / f"{big.stem}_{copy}{big.suffix}")))
        configs = configurations(args, tiles_bundle(load_bundle(BUNDLE), Path(folder)))
        for c in configs:
            c["drive"], c["big"], c["big_same_size"] = [], [], []
        for round_index in range(args.rounds):
            for c in configs:
                print(f"round {round_index + 1}/{args.rounds}: {c['name']}", file=sys.stderr, flush=True)
                drive, bigs = run_once(c, images, args.big_copies)
                c["drive"] += drive
                c["big"].append(bigs[0])
                c["big_same_size"] += bigs[1:]
    again = args.big_copies > 1
    rows = ["| configuration | s / DRIVE photograph (median) | s / 3504x2336 |"]
    rows[0] += " s / 3504x2336, same size again |" * again + " vs first row (DRIVE / big) |"
    rows.append("| --- | ---: | ---: |" + " ---: |" * again + " ---: |")
    first: dict[str, dict] = {}
    for c in configs:
        c["drive_median"], c["big_median"] = statistics.median(c["drive"]), statistics.median(c["big"])
        ref = first.setdefault(c["runtime"], c)
        ratio = f"{ref['drive_median'] / c['drive_median']:.2f}x / {ref['big_median'] / c['big_median']:.2f}x"
        same = f" {statistics.median(c['big_same_size']):.3f} |" if again else ""
        rows.append(f"| {c['name']} | {c['drive_median']:.3f} | {c['big_median']:.3f} |{same} {ratio} |")
    report = {
        "rounds": args.rounds,
        "big_copies": args.big_copies,
        "load_average": os.getloadavg(),
        "images": images,
        "configurations": configs,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
