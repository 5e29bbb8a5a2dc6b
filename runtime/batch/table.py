"""The results table of a ``fundus-batch`` run and the state that makes it resumable.

``OUT/results.parquet``: one row per input (status, reason, timings, vessel fraction, the sha256
of the input, of the run's settings and of every output file, ``fundus-infer``'s summary entry,
and with ``--measure`` one column per measurement). While a run goes on, every finished row is
appended to ``OUT/.fundus-batch/journal.jsonl`` (flushed and fsynced); a line cut short by a kill
is ignored. A restart merges the table and the journal, and an input counts as done only if its
row's input and settings hashes are the current ones and each output file it lists still has
the recorded sha256; anything else is redone (outputs are written atomically, so a kill never
leaves a half-written file). Reading this module needs pyarrow (the ``ray`` extra).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fundus_vessels.runtime.bundle import sha256_file
from fundus_vessels.runtime.imageio import atomic_output

TABLE = "results.parquet"
STATE_DIR = ".fundus-batch"
JOURNAL = "journal.jsonl"
LOCK = "lock"
# columns that differ between two runs of the same work (left out when tables are compared)
TIMING_COLUMNS = ("seconds", "preprocess_s", "inference_s", "postprocess_s", "measure_s")


class BatchLockedError(RuntimeError):
    """Another ``fundus-batch`` is writing the same output folder."""


@contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT/.fundus-batch/lock`` (one writer per output folder); stale temp outputs are removed."""
    state = out_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BatchLockedError(f"{out_dir}: another fundus-batch is writing here") from exc
        for leftover in out_dir.glob(".*.tmp"):  # atomic_output's temp files of a killed run
            leftover.unlink(missing_ok=True)
        yield


def read_rows(out_dir: Path) -> dict[str, dict]:
    """The rows recorded so far, by input file: the table, then the journal of an unfinished run."""
    rows: dict[str, dict] = {}
    table = out_dir / TABLE
    if table.is_file():
        import pyarrow.parquet as pq

        for row in pq.read_table(table).to_pylist():
            rows[row["file"]] = row
    journal = out_dir / STATE_DIR / JOURNAL
    if journal.is_file():
        for line in journal.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the line a kill cut short
                continue
            rows[row["file"]] = row
    return rows


class Journal:
    """Append-only JSON Lines record of finished rows, durable line by line."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / STATE_DIR / JOURNAL
        self.handle = open(self.path, "a")  # noqa: SIM115 - closed by close()

    def append(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.handle.write(json.dumps(row, sort_keys=True) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def write_table(out_dir: Path, rows: list[dict]) -> Path:
    """``results.parquet`` (atomic), rows in input order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = out_dir / TABLE
    ordered = sorted(rows, key=lambda r: r["index"])
    with atomic_output(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(pa.Table.from_pylist(ordered), tmp)
    return path


def output_hashes(out_dir: Path, outputs: dict[str, str]) -> dict[str, str]:
    """sha256 of each output file named in a summary entry's ``outputs``."""
    return {name: sha256_file(out_dir / name) for name in sorted(outputs.values())}


def is_done(row: dict | None, input_sha256: str, settings_sha256: str, out_dir: Path) -> bool:
    """True when ``row`` is this input's result under these settings and its outputs are intact."""
    if not row or row.get("input_sha256") != input_sha256 or row.get("settings_sha256") != settings_sha256:
        return False
    recorded = json.loads(row.get("outputs_sha256") or "{}")
    for name, sha in recorded.items():
        path = out_dir / name
        if not path.is_file() or sha256_file(path) != sha:
            return False
    return True


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without their timings (and the summary entry that holds them): what two runs must share."""
    out = []
    for row in sorted(rows, key=lambda r: r["index"]):
        kept = {k: v for k, v in row.items() if k not in TIMING_COLUMNS and k != "entry"}
        entry = json.loads(row.get("entry") or "{}")
        entry.pop("seconds", None)
        entry.pop("timings", None)
        out.append(kept | {"entry": entry})
    return out
