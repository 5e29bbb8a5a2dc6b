"""``fundus-batch`` on a real local Ray instance (2 CPUs): fundus-infer's bytes, the table, resuming.

Ray is heavy on this 2-core machine: one local instance serves the in-process tests, and only the
SIGKILL test starts its own (as a separate process, which it kills).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime_fixtures import write_synthetic_images

ray = pytest.importorskip("ray", reason="Ray not installed: pip install 'fundus-vessels[ray]'")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed: pip install 'fundus-vessels[ray]'")
from fundus_vessels.runtime.batch.cli import main as batch_main  # noqa: E402
from fundus_vessels.runtime.batch.table import JOURNAL, STATE_DIR, TABLE, comparable  # noqa: E402
from fundus_vessels.runtime.cli import main as infer_main  # noqa: E402
from fundus_vessels.runtime.results_table import read_results  # noqa: E402

IMAGE_OUTPUTS = ("_mask.png", "_prob.png", "_overlay.png")


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def table(out: Path) -> list[dict]:
    return pq.read_table(out / TABLE).to_pylist()


def drop_timings(summary: dict) -> dict:
    for entry in summary["images"]:
        entry.pop("seconds")
        entry.pop("timings")
    summary.pop("tool")
    return summary


def test_outputs_are_fundus_infers_byte_for_byte(local_ray, data_root: Path, tmp_path: Path) -> None:
    """DRIVE and CHASE images, a bad file and a CSV list: same files, same bytes, a row per input."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("01_test.tif", "02_test.tif"):
        shutil.copy(data_root / "DRIVE" / "test" / "images" / name, folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    chase = data_root / "CHASEDB1" / "Image_01L.jpg"
    listing = tmp_path / "more.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([["path", "site"], [str(chase), "chase"]])

    batch_args = [str(folder), str(listing), "-o", str(tmp_path / "batch"), "--quiet", "--workers", "2", "--report"]
    code = batch_main(batch_args)
    assert code == 1  # the broken file failed, the rest did not
    infer = infer_main([str(folder), str(chase), "-o", str(tmp_path / "infer"), "--quiet", "--threads", "1"])
    assert infer == 1
    produced = sorted(p.name for p in (tmp_path / "infer").glob("*.png"))
    assert len(produced) == 3 * len(IMAGE_OUTPUTS)
    assert sorted(p.name for p in (tmp_path / "batch").glob("*.png")) == produced
    for name in produced:
        assert (tmp_path / "batch" / name).read_bytes() == (tmp_path / "infer" / name).read_bytes(), name
    batch_summary = json.loads((tmp_path / "batch" / "summary.json").read_text())
    infer_summary = json.loads((tmp_path / "infer" / "summary.json").read_text())
    assert drop_timings(batch_summary) == drop_timings(infer_summary)
    # results.csv: the same columns and rows as fundus-infer's, timings aside
    untimed = lambda out: [r | {"seconds": ""} for r in read_results(out / "results.csv")]  # noqa: E731
    assert untimed(tmp_path / "batch") == untimed(tmp_path / "infer")
    assert (tmp_path / "batch" / "report.html").is_file()

    rows = table(tmp_path / "batch")
    assert [r["file"] for r in rows] == [
        str(folder / "01_test.tif"),
        str(folder / "02_test.tif"),
        str(folder / "broken.png"),
        str(chase),
    ]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"]
    assert "broken.png: not a readable image" in rows[2]["reason"]
    assert all(0 < r["vessel_fraction"] < 0.3 and r["inference_s"] > 0 for r in rows if r["status"] == "ok")
    assert not (tmp_path / "batch" / STATE_DIR / JOURNAL).exists()


def test_restart_keeps_verified_rows_and_redoes_the_rest(local_ray, tmp_path: Path) -> None:
    images = write_synthetic_images(tmp_path / "in", count=3)
    pq.write_table(__import__("pyarrow").table({"path": [str(p) for p in images]}), tmp_path / "list.parquet")
    out = tmp_path / "out"
    args = [str(tmp_path / "list.parquet"), "-o", str(out), "--quiet", "--workers", "2"]
    assert batch_main(args) == 0
    first = table(out)
    assert batch_main(args) == 0
    assert table(out) == first  # nothing redone: the very same rows, timings included

    (out / "fundus1_prob.png").write_bytes(b"tampered")  # present, but not what the table recorded
    (out / "fundus2_mask.png").unlink()
    assert batch_main(args) == 0
    again = table(out)
    assert again[0] == first[0]
    assert again[1]["seconds"] != first[1]["seconds"] and again[2]["seconds"] != first[2]["seconds"]
    assert comparable(again) == comparable(first)
    assert (out / "fundus2_mask.png").is_file()

    assert batch_main([*args, "--threshold", "0.3"]) == 0  # other settings: every row redone
    assert all(a["settings_sha256"] != b["settings_sha256"] for a, b in zip(table(out), first, strict=True))


def test_measure_of_a_dicom_matches_fundus_infer(local_ray, tmp_path: Path) -> None:
    """Issue 25 item 3: the DICOM's PixelSpacing gives µm in both commands, the same measurement tables."""
    pytest.importorskip("pydicom", reason="the 'clinic' extra is not installed")
    pytest.importorskip("skan", reason="the 'measure' extra is not installed")
    from dicom_fixtures import make_dicom
    from runtime_fixtures import small_fundus

    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1), syntax="jpeg", spacing_mm=(0.008, 0.008))
    common = [str(source), "--quiet", "--quality", "off", "--measure", "--threads", "1"]
    assert infer_main([*common, "-o", str(tmp_path / "infer")]) == 0
    assert batch_main([*common, "-o", str(tmp_path / "batch"), "--workers", "1"]) == 0

    def rows(out: Path, name: str) -> list[dict]:
        with open(out / name, newline="") as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    infer_rows = rows(tmp_path / "infer", "measurements.csv")
    (figures,) = infer_rows
    assert float(figures["total_length_um"]) == pytest.approx(float(figures["total_length_px"]) * 8.0, rel=1e-4)
    assert rows(tmp_path / "batch", "measurements.csv") == infer_rows
    assert rows(tmp_path / "batch", "segments.csv") == rows(tmp_path / "infer", "segments.csv")
    batch_entry = json.loads((tmp_path / "batch" / "summary.json").read_text())["images"][0]
    assert batch_entry["measurements"]["pixel_size_um"] == 8.0


def test_a_measuring_failure_is_a_row_and_the_batch_goes_on(local_ray, tmp_path: Path) -> None:
    """An empty FOV cannot be measured in degrees: fundus-infer records a failure per image and goes on; so does
    fundus-batch (its actor raised, and the batch stopped with a Ray traceback and no table)."""
    pytest.importorskip("skan", reason="the 'measure' extra is not installed")
    import numpy as np

    from fundus_vessels.runtime.imageio import write_image
    from fundus_vessels.runtime.synthetic import make_synthetic_fundus

    images = [tmp_path / "in" / f"eye{i}.png" for i in range(2)]
    images[0].parent.mkdir()
    for seed, path in enumerate(images):
        write_image(path, make_synthetic_fundus(200, 220, seed=seed).image_rgb)
    zero = tmp_path / "zero.png"  # a FOV mask file of the same size, empty
    write_image(zero, np.zeros((200, 220), np.uint8))
    common = [str(tmp_path / "in"), "--quiet", "--measure", "--camera-fov-deg", "45", "--fov", str(zero)]
    assert infer_main([*common, "-o", str(tmp_path / "infer"), "--threads", "1"]) == 1
    assert batch_main([*common, "-o", str(tmp_path / "batch"), "--workers", "1"]) == 1

    def rows(out: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_results(out / "results.csv")]

    batch_rows = rows(tmp_path / "batch")
    assert [(r["status"], r["reason"]) for r in batch_rows] == [("failed", "fundus-measure: the FOV mask is empty")] * 2
    assert batch_rows == rows(tmp_path / "infer")
    assert all((tmp_path / "batch" / f"{p.stem}_mask.png").is_file() for p in images)  # segmented all the same


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_gives_the_uninterrupted_table(local_ray, tmp_path: Path) -> None:
    images = write_synthetic_images(tmp_path / "in", count=8, height=420, width=400)
    (tmp_path / "in" / "zz_empty.png").write_bytes(b"")
    reference = tmp_path / "reference"
    assert batch_main([str(tmp_path / "in"), "-o", str(reference), "--quiet", "--workers", "2"]) == 1

    out = tmp_path / "out"
    command = [sys.executable, "-m", "fundus_vessels.runtime.batch.cli", str(tmp_path / "in"), "-o", str(out)]
    command += ["--quiet", "--workers", "1", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    victim = subprocess.Popen(command, start_new_session=True, env=env, stderr=subprocess.DEVNULL)
    journal = out / STATE_DIR / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)  # the driver and the local Ray it started
    victim.wait()
    done = len(journal.read_text().splitlines())
    assert 2 <= done < len(images) + 1 and not (out / TABLE).exists()

    restarted = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True, timeout=300)
    assert restarted.returncode == 1, restarted.stderr[-2000:]
    after_restart = table(out)
    assert comparable(after_restart) == comparable(table(reference))
    assert [r["status"] for r in after_restart].count("failed") == 1
    for image in images:
        for suffix in IMAGE_OUTPUTS:
            name = image.stem + suffix
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not list(out.glob(".*.tmp"))

    assert batch_main([str(tmp_path / "in"), "-o", str(out), "--quiet", "--workers", "1", "--threads", "1"]) == 1
    assert table(out) == after_restart  # a second restart changes nothing
