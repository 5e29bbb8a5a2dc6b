"""Issue 23 item 14 and fundus-batch's share of items 1 and 6: a real fundus-batch process on a local Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from runtime_fixtures import write_synthetic_images

from fundus_vessels.runtime import lock
from fundus_vessels.runtime.batch.table import JOURNAL, STATE_DIR

pytest.importorskip("ray", reason="Ray not installed: pip install 'fundus-vessels[ray]'")


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``FUNDUS_TEST_MARKER=marker`` (a run's driver and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"FUNDUS_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120].decode(errors="replace")
    except OSError:
        return "?"


RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _not_agents(marker: str) -> list[int]:
    return [pid for pid in marked_processes(marker) if not _command_line(pid).startswith(RAY_AGENTS)]


@pytest.mark.slow
def test_item14_ray_actors_end_with_a_sigkilled_driver_and_quiet_is_quiet(tmp_path: Path) -> None:
    write_synthetic_images(tmp_path / "in", count=12, height=420, width=400)
    out = tmp_path / "out"
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"FUNDUS_TEST_MARKER": marker}
    command = [sys.executable, "-m", "fundus_vessels.runtime.batch.cli", str(tmp_path / "in"), "-o", str(out)]
    command += ["--quiet", "--workers", "1", "--threads", "1"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        victim = subprocess.Popen(command, env=env, stderr=stderr, stdout=stderr)
    journal = out / STATE_DIR / JOURNAL
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and victim.poll() is None:
        if journal.is_file() and journal.read_text().strip():
            break
        time.sleep(0.1)
    assert victim.poll() is None, log.read_text()[-3000:]
    assert len(marked_processes(marker)) > 1  # the driver and Ray's processes
    victim.kill()  # the driver alone, as an OOM killer or a user's kill -9 would
    victim.wait()
    # Our actors (each with a model loaded) and Ray's workers go within seconds; Ray's own two agents watch
    # the raylet and leave by themselves about 60 s after it (measured 50-65 s here): allow them 150 s.
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < 15 and _not_agents(marker):
        time.sleep(0.5)
    lingering = [_command_line(pid) for pid in _not_agents(marker)]
    while time.monotonic() - killed_at < 150 and marked_processes(marker):
        time.sleep(1)
    left = marked_processes(marker)
    names = [_command_line(pid) for pid in left]  # before the kill below empties them
    for pid in left + _not_agents(marker):  # leave the machine clean even when the test fails
        with __import__("contextlib").suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not lingering, f"outlived the driver by 15 s: {lingering}"
    assert not left, f"outlived the driver by 150 s: {names}"
    printed = [line for line in log.read_text().splitlines() if line.strip()]
    assert not printed, f"--quiet printed: {printed[:5]}"


def test_items1_6_batch_takes_the_output_lock_and_guards_inputs(tmp_path: Path, capsys) -> None:
    from fundus_vessels.runtime.batch.cli import main as batch_main

    images = write_synthetic_images(tmp_path / "in", count=1)
    out = tmp_path / "out"
    out.mkdir()
    fd = lock.acquire(out, "fundus-infer")
    try:
        assert batch_main([str(images[0]), "-o", str(out), "--quiet"]) == 2
    finally:
        lock.release(out, fd)
    assert "output folder in use by fundus-infer" in capsys.readouterr().err
    assert batch_main([str(tmp_path / "in"), "-o", str(tmp_path / "in"), "--quiet"]) == 2
    assert "also an input folder" in capsys.readouterr().err
