"""Issue 23: inputs never overwritten, one run per output folder, identifiers kept out, odd names, bombs.

Each test names the issue's item it holds. The C++ twins are in tests/test_cpp_hardening.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import PATIENT_ID, make_dicom
from runtime_fixtures import small_fundus, write_synthetic_images

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.cli import main
from fundus_vessels.runtime.imageio import read_image, write_image
from fundus_vessels.runtime.measure.cli import main as measure_main


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# --- item 1: an output never replaces an input -------------------------------------------------------------


def test_item1_output_folder_that_is_an_input_folder_is_refused(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    d = tmp_path / "d"
    a, b = write_synthetic_images(d, count=2)
    a.rename(d / "eye.png")
    b.rename(d / "eye_mask.png")
    before = (d / "eye_mask.png").read_bytes()
    status = main([str(d), "-o", str(d), "--model", str(tiny_bundle), "--quiet"])
    assert status == 2
    assert "also an input folder" in capsys.readouterr().err
    assert (d / "eye_mask.png").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["eye.png", "eye_mask.png"]


def test_item1_output_that_is_an_input_file_is_refused(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    d = tmp_path / "d"
    a, b = write_synthetic_images(d, count=2)
    eye, user_mask = a.rename(d / "eye.png"), b.rename(d / "eye_mask.png")
    before = user_mask.read_bytes()
    status = main([str(eye), str(user_mask), "-o", str(d), "--model", str(tiny_bundle), "--quiet", "--save", "mask"])
    assert status == 1
    assert user_mask.read_bytes() == before
    summary = summary_of(d)
    assert [f["file"] for f in summary["failures"]] == [str(eye)]
    assert "would overwrite the input" in summary["failures"][0]["error"]
    assert [e["file"] for e in summary["images"]] == [str(user_mask)]
    assert "would overwrite the input" in capsys.readouterr().err


def test_item1_same_stem_in_two_formats_is_refused_not_overwritten(tiny_bundle: Path, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (png,) = write_synthetic_images(d, count=1)
    write_image(d / f"{png.stem}.bmp", read_image(png))
    out = tmp_path / "out"
    assert main([str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask"]) == 1
    summary = summary_of(out)
    assert len(summary["images"]) == 1 and "already used by" in summary["failures"][0]["error"]


# --- item 5: fundus-measure with a.png and a_mask.png -------------------------------------------------------


def test_item5_measure_refuses_a_second_mask_with_the_same_stem(tmp_path: Path) -> None:
    d = tmp_path / "masks"
    d.mkdir()
    mask = np.zeros((120, 120), np.uint8)
    mask[60, 10:110] = 255
    mask[10:110, 60] = 255
    write_image(d / "a.png", mask)
    write_image(d / "a_mask.png", mask)
    out = tmp_path / "out"
    assert measure_main([str(d), "-o", str(out), "--quiet"]) == 1
    summary = summary_of(out)
    assert [i["image"] for i in summary["images"]] == ["a"]
    assert "already used by" in summary["failures"][0]["error"]
    rows = (out / "measurements.csv").read_text().splitlines()
    assert len(rows) == 2  # header and one row named a


# --- item 6: one run per output folder ----------------------------------------------------------------------


def test_item6_second_run_into_a_locked_folder_stops(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    images = write_synthetic_images(tmp_path / "in", count=1)
    out = tmp_path / "out"
    out.mkdir()
    fd = lock.acquire(out, "fundus-infer")
    try:
        status = main([str(images[0]), "-o", str(out), "--model", str(tiny_bundle), "--quiet"])
    finally:
        lock.release(out, fd)
    assert status == 2
    err = capsys.readouterr().err
    assert "output folder in use by fundus-infer (pid" in err and "choose another -o" in err
    assert not (out / "summary.json").exists()
    assert not (out / lock.LOCK_NAME).exists()


def test_item6_stale_lock_of_a_killed_run_is_taken_over(tiny_bundle: Path, tmp_path: Path) -> None:
    images = write_synthetic_images(tmp_path / "in", count=1)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from pathlib import Path; from fundus_vessels.runtime import lock; "
         "lock.acquire(Path(sys.argv[1]), 'killed'); print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out.mkdir()
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    assert "killed" in (out / lock.LOCK_NAME).read_text()  # left behind, unlocked
    assert main([str(images[0]), "-o", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    assert not (out / lock.LOCK_NAME).exists()


def test_item6_measure_takes_the_lock_too(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mask = tmp_path / "m.png"
    write_image(mask, np.zeros((64, 64), np.uint8))
    fd = lock.acquire(out, "fundus-infer")
    try:
        assert measure_main([str(mask), "-o", str(out), "--quiet"]) == 2
    finally:
        lock.release(out, fd)
    assert "output folder in use" in capsys.readouterr().err


# --- item 2: no identifier in messages, summary.json or left-over files ------------------------------------


def test_item2_bad_birth_date_neither_leaks_nor_leaves_a_mask(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1))
    ds = pydicom.dcmread(source)
    ds.PatientBirthDate = "1960-01-01"
    ds.save_as(source)
    out = tmp_path / "out"
    status = main([str(source), "-o", str(out), "--model", str(tiny_bundle), "--save", "mask,dicom-seg"])
    captured = capsys.readouterr()
    text = (out / "summary.json").read_text() + captured.err + captured.out
    for secret in ("1960-01-01", "19600101", PATIENT_ID, "Doe", ds.StudyInstanceUID, ds.SOPInstanceUID):
        assert secret not in text, secret
    assert status == 0  # the malformed date is blanked in the copy highdicom gets: the SEG is written
    assert summary_of(out)["images"][0]["outputs"] == {"mask": "eye_mask.png", "dicom-seg": "eye_seg.dcm"}
    seg = pydicom.dcmread(out / "eye_seg.dcm")
    assert seg.PatientID == PATIENT_ID and not seg.PatientBirthDate


def test_item2_a_failed_dicom_seg_leaves_no_mask(tiny_bundle: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from fundus_vessels.runtime import dicom

    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1))

    def fail(path, ds, mask, model):
        raise ValueError(f"Unable to convert '{ds.PatientID}' for {ds.PatientName}")

    monkeypatch.setattr(dicom, "write_segmentation", fail)
    out = tmp_path / "out"
    assert main([str(source), "-o", str(out), "--model", str(tiny_bundle), "--save", "mask,dicom-seg"]) == 1
    text = (out / "summary.json").read_text() + capsys.readouterr().err
    assert PATIENT_ID not in text and "Doe" not in text and "Unable to convert '<redacted>'" in text
    assert not list(out.glob("eye_*"))


def test_item2_errors_about_a_dicom_are_scrubbed_of_its_identifiers(tmp_path: Path) -> None:
    from fundus_vessels.runtime.dicom import redact

    source = tmp_path / "eye.dcm"
    make_dicom(source, small_fundus(64, 64))
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    message = f"Unable to convert '{ds.PatientID}' for {ds.PatientName} in study {ds.StudyInstanceUID}"
    scrubbed = redact(message, ds)
    assert PATIENT_ID not in scrubbed and "Doe" not in scrubbed and ds.StudyInstanceUID not in scrubbed
    assert "Unable to convert" in scrubbed


# --- item 3: a file name that is not UTF-8 -------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
def test_item3_non_utf8_name_keeps_the_batch(tiny_bundle: Path, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (png,) = write_synthetic_images(d, count=1)
    odd = os.path.join(os.fsencode(d), b"caf\xe9.png")
    shutil.copy(png, odd)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fundus_vessels.runtime", str(d), "-o", str(out), "--model", str(tiny_bundle),
         "--save", "mask", "--measure", "--pixel-size-um", "10"],
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=300,
    )  # fmt: skip
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1), err
    assert "Traceback" not in err
    raw = (out / "summary.json").read_bytes()
    raw.decode("utf-8")  # valid UTF-8
    summary = json.loads(raw)
    files = sorted(e["file"] for e in summary["images"])
    assert files == sorted([str(png), str(d / "caf\\xe9.png")]), summary["failures"]
    assert os.path.exists(os.path.join(os.fsencode(out), b"caf\xe9_mask.png"))
    (out / "measurements.csv").read_bytes().decode("utf-8")


# --- items 10, 11: a pixel cap read from the header, before any decode --------------------------------------


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` gray pixels, with almost no data after it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_header_bomb(width: int, height: int) -> bytes:
    """A baseline JPEG header (SOI, DQT, SOF0, DHT-less) declaring ``width`` x ``height``."""
    dqt = b"\xff\xdb\x00\x43\x00" + bytes([1] * 64)
    sof = b"\xff\xc0\x00\x0b\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x01\x01\x11\x00"
    return b"\xff\xd8" + dqt + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 600 + b"\xff\xd9"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bomb.png", png_header_bomb(20000, 20000)),
        ("bomb.jpg", jpeg_header_bomb(65000, 65000)),
    ],
)
def test_item10_11_header_bombs_are_refused_before_decoding(name: str, data: bytes, tmp_path: Path) -> None:
    from fundus_vessels.runtime.imageio import ImageReadError

    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match=r"image too large \(\d+x\d+ = \d+ megapixels; limit 100 megapixels"):
        read_image(path)


def test_item10_11_max_pixels_flag(tiny_bundle: Path, tmp_path: Path) -> None:
    images = write_synthetic_images(tmp_path / "in", count=1)  # 280 x 300 = 84,000 pixels
    out = tmp_path / "out"
    assert main([str(images[0]), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--max-pixels", "80000"]) == 1
    assert "image too large (280x300" in summary_of(out)["failures"][0]["error"]
    assert main([str(images[0]), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--max-pixels", "84000"]) == 0


# --- item 12: model.json values bounded ----------------------------------------------------------------------


def test_item12_huge_tile_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    from fundus_vessels.runtime.bundle import BundleError, load_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["tiling"]["tile"] = 32768
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"tiling.tile must be an integer >= 32, <= 2048"):
        load_bundle(bundle)


# --- items 4 and 7: watch mode retries a failed write and sees a new photograph under an old name ---------------


def test_item7_watch_sees_a_new_photograph_with_the_old_size_and_mtime(tmp_path: Path) -> None:
    from fundus_vessels.runtime.entries import ImageEntry
    from fundus_vessels.runtime.watch import LEDGER_NAME, Ledger, Watcher, file_key

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    out_dir.mkdir()
    photo = in_dir / "eye.png"
    photo.write_bytes(b"A" * 100)
    ledger = Ledger(out_dir / LEDGER_NAME, str(in_dir.resolve()))
    ledger.record("eye.png", file_key(photo), "sha-of-A", "eye", ImageEntry(str(photo), 10, 10, 3, 8), None)
    old = photo.stat()
    new = in_dir / "incoming"
    new.write_bytes(b"B" * 100)  # same size
    os.utime(new, ns=(old.st_atime_ns, old.st_mtime_ns))  # same modification time
    os.replace(new, photo)
    assert (photo.stat().st_size, photo.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    watcher = Watcher(in_dir, ledger, settle=0.01)
    watcher.observe({"eye.png"}, now=0.0)
    assert "eye.png" in watcher.pending


def test_item4_watch_retries_a_write_that_failed(tmp_path: Path, monkeypatch) -> None:
    import errno

    from fundus_vessels.runtime import jobs, watch

    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    (photo,) = write_synthetic_images(in_dir, count=1)
    out_dir.mkdir()
    calls = []

    def run_job(job, settings):
        calls.append(job.source)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return jobs.ImageEntry(job.source, 8, 8, 3, 8, vessel_fraction=0.1, seconds=0.0)

    monkeypatch.setattr(jobs, "run_job", run_job)
    monkeypatch.setattr(watch, "build_summary", lambda *a, **k: {})
    settings = jobs.RunSettings(segmenter=None, out_dir=out_dir, kinds=("mask",), quiet=True)
    ledger = watch.Ledger.load(out_dir, in_dir)
    watcher = watch.Watcher(in_dir, ledger, settle=0.01)
    key = watch.file_key(photo)
    watch._process(settings, watcher, photo.name, key)
    record = json.loads((out_dir / watch.LEDGER_NAME).read_text())["files"][photo.name]
    assert record["failure"]["transient"] and record["retry"]
    assert photo.name in watcher.pending  # tried again in this run, after RETRY_SECONDS

    restarted = watch.Ledger.load(out_dir, in_dir)  # space freed, watcher restarted
    assert not restarted.is_done(photo.name, key)
    again = watch.Watcher(in_dir, restarted, settle=0.01)
    again.observe({photo.name}, now=0.0)
    ((name, ready_key),) = again.ready(now=1.0)
    watch._process(settings, again, name, ready_key)
    assert len(calls) == 2
    record = json.loads((out_dir / watch.LEDGER_NAME).read_text())["files"][photo.name]
    assert "entry" in record and "retry" not in record
    assert watch.Ledger.load(out_dir, in_dir).is_done(photo.name, key)


# --- items 8 and 9: nothing skipped or accepted without a word ------------------------------------------------


def test_item9_suffixless_dicom_in_a_folder_is_segmented(tiny_bundle: Path, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    make_dicom(d / "CAMERA0001", small_fundus(300, 280))
    out = tmp_path / "out"
    assert main([str(d), "-o", str(out), "--model", str(tiny_bundle), "--quiet", "--save", "mask"]) == 0
    assert [e["file"] for e in summary_of(out)["images"]] == [str(d / "CAMERA0001")]


def nan_tiff(path: Path) -> None:
    import cv2

    assert cv2.imwrite(str(path), np.full((64, 64), np.nan, np.float32))


def test_item9_all_nan_float_tiff_is_refused(tmp_path: Path) -> None:
    from fundus_vessels.runtime.imageio import ImageReadError

    path = tmp_path / "nan.tif"
    nan_tiff(path)
    with pytest.raises(ImageReadError, match="image holds no finite pixel values"):
        read_image(path)


def test_item8_dicom_whose_columns_do_not_match_its_pixels_is_refused(tmp_path: Path) -> None:
    from fundus_vessels.runtime.imageio import ImageReadError

    for name, edit in {"columns": ("Columns", -1), "rows": ("Rows", None)}.items():
        path = tmp_path / f"{name}.dcm"
        make_dicom(path, small_fundus(120, 100))
        ds = pydicom.dcmread(path)
        keyword, delta = edit
        setattr(ds, keyword, getattr(ds, keyword) + delta if delta else getattr(ds, keyword) // 2)
        ds.save_as(path)
        with pytest.raises(ImageReadError, match="the header does not describe the pixels"):
            read_image(path)


# --- item 13: no hang, no traceback -------------------------------------------------------------------------------


def test_item13_fifo_input_is_refused_not_waited_on(tiny_bundle: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fundus_vessels.runtime", str(fifo), "-o", str(out), "--model", str(tiny_bundle),
         "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert summary_of(out)["failures"] == [{"file": str(fifo), "error": f"{fifo}: not a regular file"}]


def test_item13_threads_beyond_the_cpus_are_capped(capsys) -> None:
    from fundus_vessels.runtime.jobs import usable_threads

    cpus = len(os.sched_getaffinity(0))
    assert usable_threads(999, quiet=False) == cpus
    assert f"--threads 999: using {cpus}" in capsys.readouterr().err
    assert usable_threads(1, quiet=False) == 1 and usable_threads(None, quiet=False) is None


def test_item13_deeply_nested_model_json_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    text = (bundle / "model.json").read_text().rstrip().removesuffix("}")
    (bundle / "model.json").write_text(text + ', "x": ' + "[" * 100000 + "]" * 100000 + "}")
    (image,) = write_synthetic_images(tmp_path / "in", count=1)
    assert main([str(image), "-o", str(tmp_path / "out"), "--model", str(bundle), "--quiet"]) == 2
    assert "model.json: not a model.json (nested too deeply)" in capsys.readouterr().err


# --- item 15: one line of ours ------------------------------------------------------------------------------------


def test_item15_opencv_errors_and_warnings_are_one_line(capsys) -> None:
    import warnings

    import cv2

    from fundus_vessels.runtime.cli import show_warning
    from fundus_vessels.runtime.jobs import failure_entry

    try:
        cv2.cvtColor(np.zeros((4, 4, 3), np.int8), cv2.COLOR_BGR2RGB)
    except cv2.error as exc:
        entry = failure_entry("x.tif", exc)
    assert "\n" not in entry.error and entry.error.startswith("OpenCV: Unsupported depth of input image:")
    show_warning(RuntimeWarning("invalid value encountered\nin divide"), RuntimeWarning, "numpy.py", 1)
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "fundus-infer: warning: invalid value encountered in divide"
    assert warnings.showwarning is not show_warning  # only inside main()


def test_item15_dicom_pixel_error_without_decoder_hint(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from fundus_vessels.runtime.imageio import ImageReadError

    path = tmp_path / "eye.dcm"
    make_dicom(path, small_fundus(64, 64))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not really a jpeg"])
    ds.save_as(path)
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert "cannot decode the" in message and "\n" not in message
    assert PATIENT_ID not in message
