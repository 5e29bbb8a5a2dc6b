"""Outputs never overwrite an input, and no two images of one run share an output name.

The rule (the C++ twin is ``cpp/src/output_guard.cpp``), checked before an image is read:

- an output folder that is also an input folder is refused before any image (exit status 2): the
  outputs of one run would be taken as photographs by the next, and ``eye_mask.png`` written for
  ``eye.png`` would replace a user's ``eye_mask.png``;
- an image whose output file (``<stem>_mask.png``, ``_prob``, ``_overlay``, ``_measure``, ``_seg.dcm``)
  is one of the run's input files is refused, by name, and the input is left as it was;
- a second image with the stem of an earlier one (``a.png`` and ``a.jpg``) is refused: its outputs
  would replace the first image's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

RUN_FILES = ("summary.json", "measurements.csv", "segments.csv", "watch-ledger.json")


def printable(path: str | os.PathLike) -> str:
    """``path`` as text that any stream and JSON take: bytes that are not UTF-8 become ``\\xNN``.

    A file named ``caf\xe9.png`` (Latin-1) is reported as ``caf\\xe9.png``, by Python and C++ alike
    (``cpp/src/summary.cpp``), in messages, ``summary.json`` and the CSV tables.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def from_printable(text: str) -> str:
    """The path :func:`printable` wrote as ``text`` (each ``\\xNN`` back to its byte)."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), text.encode("utf-8", "surrogateescape"))
    return os.fsdecode(raw)


def real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fsencode(path)).decode("utf-8", "surrogateescape")


def output_names(stem: str, kinds: tuple[str, ...], measure: bool = False, seg_suffix: str = "_seg.dcm") -> list[str]:
    """The files one image's outputs take in the output folder."""
    names = [f"{stem}_{k}.png" for k in kinds if k != "dicom-seg"]
    if "dicom-seg" in kinds:
        names.append(f"{stem}{seg_suffix}")
    if measure:
        names.append(f"{stem}_measure.png")
    return names


def input_folder_clash(out_dir: Path, inputs: list[str]) -> str | None:
    """Why ``out_dir`` cannot take this run's outputs (it is an input folder or an input is a run file), or None."""
    target = real(out_dir)
    for item in inputs:
        path = Path(item)
        if path.is_dir() and real(path) == target:
            return f"{out_dir}: the output folder is also an input folder {item}; choose another -o"
        if not path.is_dir() and real(path.parent) == target and path.name in RUN_FILES:
            return f"{item}: an input named like an output of the run; choose another -o"
    return None


class OutputPlan:
    """Claims output names image by image; refuses a claim that would overwrite an input or an earlier image's."""

    def __init__(self, out_dir: Path, input_paths: list[Path]) -> None:
        self.out_dir = out_dir
        self.inputs = {real(p): str(p) for p in input_paths}
        self.stems: dict[str, str] = {}

    def claim(self, source: str, stem: str, names: list[str]) -> str | None:
        """None when ``source`` may write ``names``; else the reason it is refused (nothing is claimed)."""
        if stem in self.stems:
            return f"output name {stem!r} already used by {self.stems[stem]}"
        for name in names:
            clash = self.inputs.get(real(self.out_dir / name))
            if clash is not None:
                return f"its output {name} would overwrite the input {clash}; choose another -o"
        self.stems[stem] = source
        return None
