"""The typed results of one input: :class:`ImageEntry` (segmented or refused) and :class:`FailureEntry`.

``to_json()`` is summary.json's form (and the watch ledger's, and the ``entry`` column of
fundus-batch's table): the one place its keys and their order are written. Readers of a
summary.json from disk (``results.csv``, ``report.html``, ``fundus-measure``) keep reading the
JSON form, which older runs and the C++ binary write too. The C++ self-test's ``Outcome`` is the
same idea on that side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ImageEntry:
    """One image that was segmented, or refused by the quality gate (``refused``: no vessel map)."""

    file: str
    width: int
    height: int
    channels: int  # what the file stores, alpha included
    bit_depth: int
    refused: bool = False
    backend: str | None = None
    precision: str | None = None
    seconds: float | None = None
    vessel_fraction: float | None = None
    scale: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # kind -> file name in the output folder
    quality: dict[str, Any] | None = None  # the gate's report (absent with --quality off)
    dicom: dict[str, Any] | None = None  # a DICOM input's header summary
    demo_scores: dict[str, float] | None = None  # --demo: against the drawn vessel tree
    measurements: dict[str, Any] | None = None  # --measure

    def to_json(self) -> dict[str, Any]:
        """summary.json's entry: the input's description, then what the run made of it."""
        data: dict[str, Any] = {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "bit_depth": self.bit_depth,
        }
        if self.refused:
            return data | {"refused": True, "quality": self.quality, "outputs": dict(self.outputs)}
        data |= {
            "backend": self.backend,
            "precision": self.precision,
            "seconds": self.seconds,
            "vessel_fraction": self.vessel_fraction,
            "scale": self.scale,
            "timings": dict(self.timings),
            "outputs": dict(self.outputs),
        }
        optional = {"quality": self.quality, "dicom": self.dicom, "demo_scores": self.demo_scores}
        optional["measurements"] = self.measurements
        return data | {k: v for k, v in optional.items() if v is not None}


@dataclass
class FailureEntry:
    """One input that failed; ``transient`` (an OSError: disk full, permissions) may succeed when tried again."""

    file: str
    error: str
    transient: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": self.file, "error": self.error}
        return data | {"transient": True} if self.transient else data
