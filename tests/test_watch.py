"""fundus-infer --watch: a real watcher process (shipped model, small synthetic images) fed like a camera would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runtime_fixtures import write_synthetic_images

from fundus_vessels.runtime.results_table import read_results
from fundus_vessels.runtime.watch import LEDGER_NAME, Ledger, Watcher, filesystem_type, is_candidate

pytest.importorskip("watchdog", reason="the 'clinic' extra is not installed")

REPO = Path(__file__).resolve().parent.parent
SETTLE = 1.0
TIMEOUT = 30.0


def start(in_dir: Path, out_dir: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "fundus_vessels.runtime", "--watch", str(in_dir), "-o", str(out_dir)]
    argv += ["--settle", str(SETTLE), "--save", "mask", *extra]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.head = ""  # what it printed before watching: the test feeds files only once it watches
    while "watching" not in proc.head:
        line = proc.stderr.readline()
        assert line, f"watcher exited: {proc.head}"
        proc.head += line
    return proc


def ledger_files(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / LEDGER_NAME).read_text())["files"]
    except FileNotFoundError:
        return {}


def wait_for(out_dir: Path, names: set[str], proc: subprocess.Popen) -> dict:
    """Wait until the ledger records every one of ``names``."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        files = ledger_files(out_dir)
        if names <= set(files):
            return files
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    stop(proc)
    raise AssertionError(f"not processed in {TIMEOUT} s: {sorted(names - set(ledger_files(out_dir)))}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the watcher; returns its exit status and everything it printed (per-image lines go to stdout)."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, proc.head + out + err


def segmented_lines(err: str) -> list[str]:
    return [line.split(":")[0] for line in err.splitlines() if ": vessels " in line]


def test_burst_slow_copy_rename_and_a_bad_file(tmp_path: Path) -> None:
    photos = write_synthetic_images(tmp_path / "src", count=5)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    (in_dir / "before.png").write_bytes(photos[0].read_bytes())  # there before the watcher starts
    proc = start(in_dir, out_dir)
    for i in (1, 2, 3):  # a burst
        (in_dir / f"burst{i}.png").write_bytes(photos[i].read_bytes())
    (in_dir / "bad.png").write_bytes(b"not an image at all")
    (in_dir / "notes.txt").write_text("camera sidecar: ignored")
    part = in_dir / "renamed.png.part"  # the camera's temporary name, renamed when complete
    part.write_bytes(photos[4].read_bytes()[:100])
    time.sleep(SETTLE * 1.5)  # longer than the settle time: only the rename may make it eligible
    part.write_bytes(photos[4].read_bytes())
    part.rename(in_dir / "renamed.png")
    data = photos[4].read_bytes()
    with open(in_dir / "slow.png", "wb") as f:  # copied in slowly, pauses shorter than the settle time
        for start_byte in range(0, len(data), len(data) // 6 + 1):
            f.write(data[start_byte : start_byte + len(data) // 6 + 1])
            f.flush()
            time.sleep(SETTLE / 3)
    names = {"before.png", "burst1.png", "burst2.png", "burst3.png", "bad.png", "renamed.png", "slow.png"}
    files = wait_for(out_dir, names, proc)
    status, err = stop(proc)
    assert status == 0, err
    assert set(files) == names  # neither the .part nor the .txt
    assert "not a readable image" in files["bad.png"]["failure"]["error"]
    assert all("entry" in files[n] for n in names - {"bad.png"})  # slow.png was never read half-written
    assert sorted(segmented_lines(err)) == sorted(str(in_dir / n) for n in names - {"bad.png"})
    for name in names:  # each read once: no failed attempt on a half-written file before the success
        assert sum(f"{in_dir / name}:" in line for line in err.splitlines()) == 1, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["succeeded"] == 6 and summary["failed"] == 1
    assert (out_dir / "slow_mask.png").is_file() and not (out_dir / "bad_mask.png").exists()
    rows = read_results(out_dir / "results.csv")  # rewritten with summary.json after every image
    assert sorted(Path(r["file"]).name for r in rows) == sorted(names)
    assert [r["status"] for r in rows].count("failed") == 1


def test_restart_processes_nothing_twice_and_misses_nothing(tmp_path: Path) -> None:
    photos = write_synthetic_images(tmp_path / "src", count=4)
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    proc = start(in_dir, out_dir)
    for p in photos[:2]:
        (in_dir / p.name).write_bytes(p.read_bytes())
    wait_for(out_dir, {photos[0].name, photos[1].name}, proc)
    status, err = stop(proc, signal.SIGINT)
    assert status == 0, err
    first = {p.stem: (out_dir / f"{p.stem}_mask.png").stat().st_mtime_ns for p in photos[:2]}
    for p in photos[2:]:  # arrive while the watcher is down
        (in_dir / p.name).write_bytes(p.read_bytes())
    os.utime(in_dir / photos[0].name)  # touched, same content: not a new image
    proc = start(in_dir, out_dir, "--watch-poll")  # the restart also exercises the polling fallback
    files = wait_for(out_dir, {p.name for p in photos}, proc)
    time.sleep(SETTLE * 1.5)  # give a wrongly re-queued file time to be processed again
    status, err = stop(proc)
    assert status == 0, err
    assert sorted(segmented_lines(err)) == sorted(str(in_dir / p.name) for p in photos[2:])
    assert {p.stem: (out_dir / f"{p.stem}_mask.png").stat().st_mtime_ns for p in photos[:2]} == first
    assert len(files) == 4 and json.loads((out_dir / "summary.json").read_text())["succeeded"] == 4
    # new content under an old name is a new photograph
    (in_dir / photos[1].name).write_bytes(photos[3].read_bytes())
    proc = start(in_dir, out_dir)
    deadline = time.monotonic() + TIMEOUT
    while ledger_files(out_dir)[photos[1].name]["sha256"] == files[photos[1].name]["sha256"]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    status, err = stop(proc)
    assert segmented_lines(err) == [str(in_dir / photos[1].name)]


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for extra, message in [
        (["--watch", str(tmp_path / "missing")], "not a folder"),
        (["--watch", str(tmp_path / "in"), "--settle", "0"], "--settle must be > 0"),
        (["--watch", str(tmp_path / "in"), "x.png"], "takes no INPUT"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "fundus_vessels.runtime", *extra, "-o", str(tmp_path / "out")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "fundus_vessels.runtime", "--watch", str(tmp_path / "in"), "-o", str(tmp_path / "in")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2 and "must be different folders" in done.stderr


def test_settle_rule_and_names(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / LEDGER_NAME, str(tmp_path))
    watcher = Watcher(tmp_path, ledger, settle=1.0)
    (tmp_path / "a.png").write_bytes(b"12")
    (tmp_path / ".hidden.png").write_bytes(b"12")
    (tmp_path / "b.jpg.part").write_bytes(b"12")
    assert watcher.scan() == {"a.png"}
    watcher.observe({"a.png"}, now=0.0)
    assert watcher.ready(now=0.9) == []
    (tmp_path / "a.png").write_bytes(b"1234")  # still growing: the settle time starts again
    watcher.observe(set(), now=0.95)
    assert watcher.ready(now=1.5) == []
    assert [name for name, _ in watcher.ready(now=1.96)] == ["a.png"]
    assert not is_candidate("x.png.tmp") and not is_candidate("x.png~") and is_candidate("x.png")
    assert filesystem_type(tmp_path) is not None or not Path("/proc/self/mounts").exists()


def test_a_ledger_of_another_folder_is_refused(tmp_path: Path) -> None:
    from fundus_vessels.runtime.cli import UsageError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Ledger(tmp_path / LEDGER_NAME, str((tmp_path / "a").resolve())).save()
    with pytest.raises(UsageError, match="records the watched folder"):
        Ledger.load(tmp_path, tmp_path / "b")
    (tmp_path / LEDGER_NAME).write_text("{broken")
    with pytest.raises(UsageError, match="unreadable watch ledger"):
        Ledger.load(tmp_path, tmp_path / "a")
