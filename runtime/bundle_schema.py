"""The ``model.json`` contract as frozen, typed objects: one parser for the loader and every writer.

:meth:`BundleSpec.from_json` checks every contract value (format, input, preprocess, tiling, output,
threshold, files) and raises :class:`BundleError` naming the file and the dotted key, e.g.
``bundle/model.json: tiling.tile must be an integer >= 32 and a multiple of 32 (got 'x')``.
Provenance sections (architecture, training, metrics, versions, ...) are not part of the contract
and stay free-form in :attr:`Bundle.meta`. The C++ loader (``cpp/src/bundle.cpp``) applies the same
rules in the same order with the same wording.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NoReturn

from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.runtime.scale import ScaleConfig

BUNDLE_FORMAT = "fundus-bundle/1"
TILE_MULTIPLE = 32  # the same rule as training's config (train/config.py): the U-Net halves the tile 4 times
MAX_TILE = 2048  # one tile's activations stay near 1 GB (the shipped bundles use 256); cpp/src/bundle.cpp kMaxTile
MAX_CLAHE_GRID = 64  # CLAHE keeps a histogram per grid cell: grid 64 is 4096 cells (shipped: 8)
CHANNELS = ("gray", "green")
PREPROCESS_KEYS = ("channel", "clahe_clip", "clahe_grid", "mean", "std")
TILING_KEYS = ("tile", "overlap", "whole_image")
# a whole-image pass pads the plane to a multiple of this (the U-Net halves it 4 times); cpp kWholeMultiple
WHOLE_MULTIPLE = 16
SCALE_KEYS = ("reference_diameter", "tolerance", "factor_range")
MAX_REFERENCE_DIAMETER = 4096  # px: the model's working FOV; larger would make every image a memory risk
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle folder that is missing, incomplete or whose files do not match ``model.json``."""


@dataclass(frozen=True)
class InputSpec:
    """The model's input tensor: ONNX name, channel count (1), layout and element type."""

    name: str
    channels: int = 1
    layout: str = "NCHW"
    dtype: str = "float32"


@dataclass(frozen=True)
class TilingSpec:
    """Square tiles of ``tile`` px cut with ``overlap`` px shared between neighbours.

    ``whole_image`` (optional, 0 when absent): a model-scale plane whose sides, padded to a multiple of
    :data:`WHOLE_MULTIPLE`, are both at most this many px runs in one pass instead of tiles, on backends
    that take any input size (ONNX Runtime CPU with ``model.dynamic.onnx``, OpenCV DNN).
    """

    tile: int
    overlap: int
    whole_image: int = 0


@dataclass(frozen=True)
class OutputSpec:
    """The model's output tensor: ONNX name, class names, which class is vessel, activation."""

    name: str
    classes: tuple[str, ...]
    vessel_index: int
    activation: str = "softmax"


@dataclass(frozen=True)
class FileEntry:
    """One model file of the bundle: path relative to the bundle folder, sha256 and size."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class BundleSpec:
    """The contract part of ``model.json``: everything a runtime reads from it."""

    input: InputSpec
    preprocess: PreprocessConfig
    tiling: TilingSpec
    output: OutputSpec
    threshold: float
    files: Mapping[str, FileEntry]
    format: str = BUNDLE_FORMAT
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # optional section; absent: no scale normalisation

    @classmethod
    def from_json(cls, meta: object, source: object) -> BundleSpec:
        """Validate parsed ``model.json`` content; ``source`` (the file) is named in every error."""
        check = _Checker(str(source))
        if not isinstance(meta, dict):
            check.fail("", "a JSON object", meta)
        if meta.get("format") != BUNDLE_FORMAT:
            check.bad("format", f"'{BUNDLE_FORMAT}'", meta, "format")
        return cls(
            input=_input(check, check.section(meta, "input")),
            preprocess=_preprocess(check, check.section(meta, "preprocess")),
            tiling=_tiling(check, check.section(meta, "tiling")),
            scale=_scale(check, meta["scale"]) if "scale" in meta else ScaleConfig(),
            output=_output(check, check.section(meta, "output")),
            threshold=check.number(meta, "threshold", "threshold", "a finite number in (0, 1)", lambda t: 0 < t < 1),
            files=_files(check, check.section(meta, "files")),
        )

    def checked(self, source: object) -> BundleSpec:
        """This spec validated by the loader's rules (for writers that build one from values)."""
        return BundleSpec.from_json(self.contract(), source)

    def contract(self) -> dict:
        """The contract sections as ``model.json`` holds them (files included)."""
        return {
            "format": self.format,
            "input": vars(self.input).copy(),
            "preprocess": self.preprocess.to_dict(),
            "tiling": {k: v for k, v in vars(self.tiling).items() if k != "whole_image" or v},
            **({"scale": self.scale.to_dict()} if self.scale.enabled else {}),
            "output": {**vars(self.output), "classes": list(self.output.classes)},
            "threshold": self.threshold,
            "files": {key: vars(entry).copy() for key, entry in self.files.items()},
        }


def shown(value: object) -> str:
    """A model.json value as error messages show it (the C++ loader writes the same)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return json.dumps(value) if value is None else repr(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    """Raises :class:`BundleError` ``"<source>: <key> must be <rule> (got <value>)"``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, rule: str, value: object, missing: bool = False) -> NoReturn:
        where = f"{self.source}: {key}" if key else f"{self.source}: content"
        if missing:
            raise BundleError(f"{where} missing (must be {rule})")
        raise BundleError(f"{where} must be {rule} (got {shown(value)})")

    def bad(self, key: str, rule: str, section: dict, name: str) -> NoReturn:
        self.fail(key, rule, section.get(name), missing=name not in section)

    def section(self, meta: dict, name: str) -> dict:
        if not isinstance(meta.get(name), dict):
            self.bad(name, "an object", meta, name)
        return meta[name]

    def integer(self, section: dict, name: str, key: str, rule: str, ok=lambda v: True) -> int:
        value = section.get(name)
        if not (_is_int(value) and ok(value)):
            self.bad(key, rule, section, name)
        return value

    def number(self, section: dict, name: str, key: str, rule: str, ok=lambda v: True) -> float:
        value = section.get(name)
        if not (_is_number(value) and ok(value)):
            self.bad(key, rule, section, name)
        return float(value)

    def string(self, section: dict, name: str, key: str, rule: str = "a non-empty string", ok=bool) -> str:
        value = section.get(name)
        if not (isinstance(value, str) and ok(value)):
            self.bad(key, rule, section, name)
        return value

    def known_keys(self, section: dict, prefix: str, known: tuple[str, ...]) -> None:
        for name in section:
            if name not in known:
                raise BundleError(f"{self.source}: {prefix}.{name} is not a known key (known: {', '.join(known)})")


def _input(check: _Checker, section: dict) -> InputSpec:
    return InputSpec(
        name=check.string(section, "name", "input.name"),
        channels=check.integer(section, "channels", "input.channels", "1 (one input plane)", lambda c: c == 1),
        layout=check.string(section, "layout", "input.layout", "'NCHW'", lambda s: s == "NCHW"),
        dtype=check.string(section, "dtype", "input.dtype", "'float32'", lambda s: s == "float32"),
    )


def _preprocess(check: _Checker, section: dict) -> PreprocessConfig:
    check.known_keys(section, "preprocess", PREPROCESS_KEYS)
    return PreprocessConfig(
        channel=check.string(section, "channel", "preprocess.channel", "'gray' or 'green'", CHANNELS.__contains__),
        clahe_clip=check.number(section, "clahe_clip", "preprocess.clahe_clip", "a finite number > 0", lambda v: v > 0),
        clahe_grid=check.integer(
            section,
            "clahe_grid",
            "preprocess.clahe_grid",
            f"an integer in [1, {MAX_CLAHE_GRID}]",
            lambda v: 1 <= v <= MAX_CLAHE_GRID,
        ),
        mean=check.number(section, "mean", "preprocess.mean", "a finite number"),
        std=check.number(section, "std", "preprocess.std", "a finite number > 0", lambda v: v > 0),
    )


def _tiling(check: _Checker, section: dict) -> TilingSpec:
    check.known_keys(section, "tiling", TILING_KEYS)
    rule = f"an integer >= {TILE_MULTIPLE}, <= {MAX_TILE} and a multiple of {TILE_MULTIPLE}"
    tile = check.integer(
        section, "tile", "tiling.tile", rule, lambda t: TILE_MULTIPLE <= t <= MAX_TILE and t % TILE_MULTIPLE == 0
    )
    rule = f"an integer with 0 <= overlap < tiling.tile ({tile})"
    overlap = check.integer(section, "overlap", "tiling.overlap", rule, lambda o: 0 <= o < tile)
    if "whole_image" not in section:
        return TilingSpec(tile, overlap)
    rule = f"an integer with 0 <= whole_image <= {MAX_TILE} (0: always tiles)"
    whole = check.integer(section, "whole_image", "tiling.whole_image", rule, lambda w: 0 <= w <= MAX_TILE)
    return TilingSpec(tile, overlap, whole)


def _scale(check: _Checker, section: object) -> ScaleConfig:
    if not isinstance(section, dict):
        check.fail("scale", "an object", section)
    check.known_keys(section, "scale", SCALE_KEYS)
    rule = f"a finite number in [0, {MAX_REFERENCE_DIAMETER}] (pixels; 0: no scale normalisation)"
    reference = check.number(
        section, "reference_diameter", "scale.reference_diameter", rule, lambda v: 0 <= v <= MAX_REFERENCE_DIAMETER
    )
    tolerance = check.number(
        section, "tolerance", "scale.tolerance", "a finite number in [0, 0.5)", lambda v: 0 <= v < 0.5
    )
    limits = section.get("factor_range")
    if not (
        isinstance(limits, list)
        and len(limits) == 2
        and all(_is_number(v) for v in limits)
        and 0.01 <= limits[0] <= 1 <= limits[1] <= 4
    ):
        check.bad("scale.factor_range", "[low, high] with 0.01 <= low <= 1 <= high <= 4", section, "factor_range")
    return ScaleConfig(reference, tolerance, (float(limits[0]), float(limits[1])))


def _output(check: _Checker, section: dict) -> OutputSpec:
    name = check.string(section, "name", "output.name")
    classes = section.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)):
        check.bad("output.classes", "a list of at least 2 class names", section, "classes")
    rule = f"an integer index into output.classes (0 to {len(classes) - 1})"
    index = check.integer(section, "vessel_index", "output.vessel_index", rule, lambda i: 0 <= i < len(classes))
    activation = check.string(section, "activation", "output.activation", "'softmax'", lambda s: s == "softmax")
    return OutputSpec(name, tuple(classes), index, activation)


def _relative_inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts


def _files(check: _Checker, section: dict) -> dict[str, FileEntry]:
    files = {}
    for precision, entry in section.items():
        key = f"files.{precision}"
        if not isinstance(entry, dict):
            check.fail(key, "an object with path, sha256 and bytes", entry)
        files[precision] = FileEntry(
            path=check.string(entry, "path", f"{key}.path", "a relative path inside the bundle", _relative_inside),
            sha256=check.string(entry, "sha256", f"{key}.sha256", "64 lower-case hex digits", _SHA256.fullmatch),
            bytes=check.integer(entry, "bytes", f"{key}.bytes", "an integer >= 0", lambda n: n >= 0),
        )
    return files
