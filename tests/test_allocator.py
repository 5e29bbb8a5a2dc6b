"""runtime.allocator: the command-line tools keep freed image memory in the process (glibc's mallopt)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from fundus_vessels.runtime import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_both_settings() -> None:
    # in a child process: the setting is process-wide and this test must not change pytest's own allocator
    code = "from fundus_vessels.runtime.allocator import keep_freed_image_memory as k; print(k())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_image_memory() is False
