"""One run per output folder: ``OUTDIR/.fundus-vessels.lock``, held with ``flock`` for the whole run.

A second ``fundus-infer`` (Python or C++, which takes the same lock: ``cpp/src/run_lock.cpp``),
``fundus-measure`` or watch mode pointed at a folder in use stops at once with exit status 2 and a
message naming the holder. The kernel drops a ``flock`` when its process dies, so a run killed with
SIGKILL leaves at most an unlocked file, which the next run takes over (a stale lock needs no
clean-up). The holder deletes the file when it finishes; a run that locked a file another run was
deleting sees the inode change and locks again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".fundus-vessels.lock"
_ATTEMPTS = 5


class OutputFolderBusy(RuntimeError):
    """Another live run holds the output folder's lock (or the folder cannot be locked at all)."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another run"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def acquire(out_dir: Path, prog: str) -> int:
    """Lock ``out_dir`` for this process; returns the lock's file descriptor (see :func:`release`)."""
    path = Path(out_dir) / LOCK_NAME
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # read-only or missing folder
            raise OutputFolderBusy(f"{out_dir}: cannot lock the output folder ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputFolderBusy(
                f"{out_dir}: output folder in use by {holder}; wait for it to finish or choose another -o"
            ) from None
        except OSError as exc:  # e.g. ENOLCK on a share without lock support
            os.close(fd)
            raise OutputFolderBusy(f"{out_dir}: cannot lock the output folder ({exc.strerror or exc})") from None
        if _same_file(fd, path):  # not a file the previous holder unlinked after we opened it
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{prog} (pid {os.getpid()} on {socket.gethostname()}, since {started})\n".encode(), 0)
            return fd
        os.close(fd)
    raise OutputFolderBusy(f"{out_dir}: could not take the output folder's lock {path}")


def release(out_dir: Path, fd: int) -> None:
    """Delete the lock file (while still holding it) and unlock."""
    path = Path(out_dir) / LOCK_NAME
    with contextlib.suppress(OSError):
        if _same_file(fd, path):
            path.unlink()
    os.close(fd)


@contextlib.contextmanager
def output_lock(out_dir: Path, prog: str) -> Iterator[None]:
    """Hold ``out_dir``'s lock inside the block (raises :class:`OutputFolderBusy`)."""
    fd = acquire(out_dir, prog)
    try:
        yield
    finally:
        release(out_dir, fd)
