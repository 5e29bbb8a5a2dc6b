"""``fundus-infer --watch IN -o OUT``: segment every image that appears in a folder, once, until stopped.

- A file is read only once it is complete: its size and modification time unchanged for ``--settle`` seconds.
  Hidden names and temporary suffixes (``.part``, ``.tmp``, ...) are not looked at, so a camera that writes
  ``x.jpg.part`` and renames it to ``x.jpg`` is picked up at the rename.
- ``OUT/watch-ledger.json`` (rewritten atomically after every image) records each file done with its size,
  modification and change times, inode and sha256: a restart skips what it holds and takes up everything else.
  A new photograph under an old name is seen even with the old size and modification time (its change time or
  inode differs; the sha256 then decides). A failure to read or write a file (disk full, permissions: the
  failure is marked ``transient``) is not done: it is tried again after :data:`RETRY_SECONDS`, and on restart.
  An image whose outputs were written but whose ledger entry was not (killed in between) is segmented again on
  restart and its outputs overwritten (atomically, with the same content).
  A file replaced by new content is a new image.
- File events come from ``watchdog`` (inotify on Linux); on network shares (NFS, SMB, ...), whose changes made
  by other machines raise no local events, or with ``--watch-poll``, the folder is listed every half settle
  time instead. With events, the folder is still listed every :data:`RESCAN_SECONDS` as a safety net.
- SIGTERM or SIGINT stops the watcher after the current image (a second one stops it at once).
- IN is not searched recursively.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundus_vessels.runtime import dicom
from fundus_vessels.runtime.bundle import sha256_file
from fundus_vessels.runtime.entries import FailureEntry, ImageEntry
from fundus_vessels.runtime.exit_status import ExitStatus
from fundus_vessels.runtime.extras import extra_hint
from fundus_vessels.runtime.imageio import IMAGE_SUFFIXES, write_json
from fundus_vessels.runtime.jobs import PROG, Job, RunSettings, UsageError, build_summary, failure_entry, segment_job
from fundus_vessels.runtime.outputs_guard import printable
from fundus_vessels.runtime.results_table import write_results

LEDGER_NAME = "watch-ledger.json"
LEDGER_VERSION = 1
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".download", ".filepart", ".inprogress", "~")
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ncpfs", "ceph", "glusterfs", "lustre", "gpfs", "davfs"}
)
RESCAN_SECONDS = 30.0
RETRY_SECONDS = 60.0  # a transient failure (disk full, ...) is tried again this long after
MIN_POLL_SECONDS = 0.2

FileKey = tuple[int, int, int, int]  # (size, mtime_ns, ctime_ns, inode)
KEY_FIELDS = ("size", "mtime_ns", "ctime_ns", "inode")


def is_candidate(name: str) -> bool:
    """Not hidden and not a temporary name of a file still being written."""
    return not name.startswith(".") and not name.lower().endswith(TEMP_SUFFIXES)


def is_input(path: Path) -> bool:
    """An image the watcher segments: a known image suffix, or DICOM by its content (often no suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES or dicom.is_dicom(path)


def file_key(path: Path) -> FileKey | None:
    """(size, mtime_ns, ctime_ns, inode) of a regular file, or None when it is gone or not a file.

    The change time and inode tell a new photograph copied over an old one even when it keeps the old one's
    size and modification time (``cp -p``, a camera's clock); they also change on ``chmod`` or a backup's
    restore, after which the sha256 finds the content already done.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) if os.path.isfile(path) else None


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` from /proc/self/mounts (None where unknown)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target, best, fstype = str(path.resolve()), "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, parts[2]
    return fstype


def is_network_filesystem(path: Path) -> bool:
    fstype = filesystem_type(path) or ""
    return fstype in NETWORK_FILESYSTEMS or fstype.split(".")[-1] in NETWORK_FILESYSTEMS or fstype == "fuse.sshfs"


@dataclass
class Ledger:
    """What OUT already holds: one record per input file name, saved atomically after each image."""

    path: Path
    input_dir: str
    files: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: Path, input_dir: Path) -> Ledger:
        path = out_dir / LEDGER_NAME
        ledger = cls(path, str(input_dir.resolve()))
        if not path.exists():
            return ledger
        try:
            data = json.loads(path.read_text())
            files = data["files"]
            recorded = data["input"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: unreadable watch ledger ({exc}); move it away to start afresh") from exc
        if recorded != ledger.input_dir:
            raise UsageError(f"{path}: this output folder records the watched folder {recorded}, not {input_dir}")
        ledger.files = files
        return ledger

    def is_done(self, name: str, key: FileKey) -> bool:
        """Recorded with this key, and not a transient failure that waits for a retry."""
        record = self.files.get(name)
        return record is not None and not record.get("retry") and tuple(record.get(k) for k in KEY_FIELDS) == key

    def same_content(self, name: str, key: FileKey, sha256: str) -> bool:
        """True when ``name`` was done with this content; its new key is then recorded."""
        record = self.files.get(name)
        if record is None or record.get("retry") or record["sha256"] != sha256:
            return False
        record.update(zip(KEY_FIELDS, key, strict=True))
        return True

    def stem_owner(self, name: str, stem: str) -> str | None:
        """Another file whose outputs already use ``stem``."""
        return next((n for n, r in self.files.items() if r["stem"] == stem and n != name), None)

    def record(
        self, name: str, key: FileKey, sha256: str, stem: str, entry: ImageEntry | None, failure: FailureEntry | None
    ) -> None:
        self.files.pop(name, None)  # re-insert: the ledger and summary list files in the order done
        self.files[name] = {**dict(zip(KEY_FIELDS, key, strict=True)), "sha256": sha256, "stem": stem}
        self.files[name] |= {"entry": entry.to_json()} if entry is not None else {"failure": failure.to_json()}
        if failure is not None and failure.transient:
            self.files[name]["retry"] = True  # not done: tried again later, and after a restart

    def save(self) -> None:
        write_json(self.path, {"version": LEDGER_VERSION, "input": self.input_dir, "files": self.files})

    def results(self) -> tuple[list[dict], list[dict]]:
        images = [r["entry"] for r in self.files.values() if "entry" in r]
        return images, [r["failure"] for r in self.files.values() if "failure" in r]


class StopFlag:
    """Set by the first SIGTERM/SIGINT; the second one interrupts at once (KeyboardInterrupt)."""

    def __init__(self, wake: threading.Event) -> None:
        self.stopped = False
        self._wake = wake
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        self._wake.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def start_observer(folder: Path, names: queue.Queue, wake: threading.Event) -> Any:
    """A watchdog observer that queues the file names created, changed or moved into ``folder``."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            if event.is_directory:
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                path = Path(os.fsdecode(raw)) if raw else None
                if path is not None and path.parent == folder:
                    names.put(path.name)
            wake.set()

    observer = Observer()
    observer.schedule(Handler(), str(folder), recursive=False)
    observer.start()
    return observer


@dataclass
class Pending:
    key: FileKey
    since: float


class Watcher:
    """Finds complete, not yet processed files in ``folder`` and hands them to ``process``."""

    def __init__(self, folder: Path, ledger: Ledger, settle: float) -> None:
        self.folder, self.ledger, self.settle = folder, ledger, settle
        self.pending: dict[str, Pending] = {}
        self.ignored: dict[str, FileKey] = {}

    def scan(self) -> set[str]:
        try:
            return {e.name for e in os.scandir(self.folder) if e.is_file() and is_candidate(e.name)}
        except OSError as exc:
            print(f"{PROG}: {self.folder}: cannot list ({exc.strerror or exc})", file=sys.stderr)
            return set()

    def observe(self, names: set[str], now: float) -> None:
        """Note new or changed files; a file's settle time restarts whenever its size or mtime changes."""
        for name in names | set(self.pending):
            if not is_candidate(name):
                continue
            key = file_key(self.folder / name)
            if key is None or self.ledger.is_done(name, key) or self.ignored.get(name) == key:
                self.pending.pop(name, None)
                continue
            seen = self.pending.get(name)
            if seen is None or seen.key != key:
                self.pending[name] = Pending(key, now)

    def ready(self, now: float) -> list[tuple[str, FileKey]]:
        """Files unchanged for the settle time, oldest name first."""
        done = sorted(n for n, p in self.pending.items() if now - p.since >= self.settle)
        return [(n, self.pending.pop(n).key) for n in done]

    def retry(self, name: str, key: FileKey, now: float) -> None:
        self.pending[name] = Pending(key, now)


def watch_command(args: argparse.Namespace, settings: RunSettings) -> int:
    """Run watch mode until SIGTERM/SIGINT; returns the exit status (0 after a clean stop, 2 usage error)."""
    try:
        folder, ledger, poll = _prepare(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    wake, names = threading.Event(), queue.Queue()
    observer = None
    if not poll:
        try:
            observer = start_observer(folder, names, wake)
        except OSError as exc:  # e.g. the inotify watch limit
            print(f"{PROG}: {folder}: no file events ({exc}); polling instead", file=sys.stderr)
            poll = True
    stop = StopFlag(wake)
    try:
        _loop(settings, Watcher(folder, ledger, args.settle), names, wake, stop, poll)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except OSError as exc:  # the ledger or summary.json cannot be written: stop rather than lose track
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    finally:
        stop.restore()
        if observer is not None:
            observer.stop()
            observer.join()
    images, failures = ledger.results()
    if not args.quiet:
        print(f"{PROG}: stopped; {len(images)} segmented, {len(failures)} failed in {args.output_dir}", file=sys.stderr)
    return ExitStatus.OK


def _prepare(args: argparse.Namespace) -> tuple[Path, Ledger, bool]:
    folder = Path(args.watch)
    if not folder.is_dir():
        raise UsageError(f"--watch {folder}: not a folder")
    if folder.resolve() == Path(args.output_dir).resolve():
        raise UsageError("--watch IN and -o OUT must be different folders (outputs would be segmented again)")
    if not args.settle > 0:
        raise UsageError(f"--settle must be > 0 seconds, got {args.settle}")
    poll = args.watch_poll
    if not poll and is_network_filesystem(folder):
        print(f"{PROG}: {folder} is on a network filesystem ({filesystem_type(folder)}): polling", file=sys.stderr)
        poll = True
    if not poll:
        try:
            import watchdog  # noqa: F401
        except ModuleNotFoundError as exc:
            raise UsageError(f"--watch {extra_hint('clinic', 'watchdog')} (or use --watch-poll)") from exc
    return folder, Ledger.load(Path(args.output_dir), folder), poll


def _loop(
    settings: RunSettings, watcher: Watcher, names: queue.Queue, wake: threading.Event, stop: StopFlag, poll: bool
) -> None:
    settle = watcher.settle
    rescan_every = max(MIN_POLL_SECONDS, settle / 2) if poll else RESCAN_SECONDS
    tick = max(0.05, min(0.5, settle / 4))
    next_scan = 0.0
    if not settings.quiet:
        mode = "polling" if poll else "file events"
        print(f"{PROG}: watching {watcher.folder} ({mode}, settle {settle:g} s)", file=sys.stderr)
    while not stop.stopped:
        now = time.monotonic()
        changed = _drain(names)
        if now >= next_scan:
            changed |= watcher.scan()
            next_scan = now + rescan_every
        watcher.observe(changed, now)
        for name, key in watcher.ready(now):
            if stop.stopped:
                watcher.retry(name, key, now)
                break
            _process(settings, watcher, name, key)
        wake.wait(tick)
        wake.clear()


def _drain(names: queue.Queue) -> set[str]:
    found = set()
    while True:
        try:
            found.add(names.get_nowait())
        except queue.Empty:
            return found


def _process(settings: RunSettings, watcher: Watcher, name: str, key: FileKey) -> None:
    """Segment one settled file and record it; a file that changed meanwhile waits to settle again."""
    path, ledger = watcher.folder / name, watcher.ledger
    if not is_input(path):
        watcher.ignored[name] = key
        return
    try:
        sha256 = sha256_file(path)
    except OSError:
        return  # gone since it settled; a new file of that name is seen anew
    if ledger.same_content(name, key, sha256):
        ledger.save()
        return
    job = Job(source=printable(path), stem=path.stem, path=path)
    owner = ledger.stem_owner(name, job.stem)
    if owner is not None:
        entry, failure = (
            None,
            failure_entry(job.source, ValueError(f"output name {job.stem!r} already used by {owner}")),
        )
    else:
        entry, failure = segment_job(job, settings)
    after = file_key(path)
    if after is None:
        return
    if after != key:
        watcher.retry(name, after, time.monotonic())  # written to while being read: not complete after all
        return
    ledger.record(name, key, sha256, job.stem, entry, failure)
    ledger.save()
    if failure is not None and failure.transient:
        watcher.retry(name, key, time.monotonic() + RETRY_SECONDS - watcher.settle)
    images, failures = ledger.results()
    summary = build_summary(settings, images, failures)
    summary["watch"] = {"input": ledger.input_dir, "settle_s": watcher.settle}
    write_json(settings.out_dir / "summary.json", summary)
    write_results(settings.out_dir, summary, measure=False)
