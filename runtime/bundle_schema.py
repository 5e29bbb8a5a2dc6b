"""The ``model.json`` contract as frozen, typed objects: one parser for the loader and every writer.

:meth:`BundleSpec.from_json` checks every contract value (format, input, preprocess, tiling, scale,
output, threshold, files) by the rules in ``bundle_rules.json`` and raises :class:`BundleError` naming
the file, the dotted key and the rule, e.g. ``bundle/model.json: tiling.tile must be <the rule> (got 'x')``.
The C++ loader (``cpp/src/bundle.cpp``) embeds the same file at build time
and walks it the same way, so the two cannot drift. Provenance sections (architecture, training,
metrics, versions, ...) are not part of the contract and stay free-form in :attr:`Bundle.meta`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath
from typing import NoReturn

from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.runtime.scale import ScaleConfig

RULES: dict = json.loads(resources.files("fundus_vessels.runtime").joinpath("bundle_rules.json").read_text("utf-8"))
LIMITS: Mapping[str, int] = RULES["limits"]
BUNDLE_FORMAT = RULES["fields"][0]["one_of"][0]
TILE_MULTIPLE = LIMITS["tile_multiple"]  # the U-Net halves a tile 4 times (train/config.py checks the same)
MAX_TILE = LIMITS["max_tile"]  # one tile's activations stay near 1 GB (the shipped bundles use 256)
WHOLE_MULTIPLE = LIMITS["whole_multiple"]  # a whole-image pass pads the plane to a multiple of this
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
        if not isinstance(meta, dict):
            raise BundleError(f"{source}: content must be a JSON object (got {shown(meta)})")
        _Checker(str(source)).fields(meta, RULES["fields"], "")
        pre, tiling, output, files = meta["preprocess"], meta["tiling"], meta["output"], meta["files"]
        scale = meta.get("scale")
        return cls(
            input=InputSpec(**{name: meta["input"][name] for name in ("name", "channels", "layout", "dtype")}),
            preprocess=PreprocessConfig(
                pre["channel"], float(pre["clahe_clip"]), pre["clahe_grid"], float(pre["mean"]), float(pre["std"])
            ),
            tiling=TilingSpec(tiling["tile"], tiling["overlap"], tiling.get("whole_image", 0)),
            scale=ScaleConfig(
                float(scale["reference_diameter"]), float(scale["tolerance"]), tuple(map(float, scale["factor_range"]))
            )
            if scale is not None
            else ScaleConfig(),
            output=OutputSpec(output["name"], tuple(output["classes"]), output["vessel_index"], output["activation"]),
            threshold=float(meta["threshold"]),
            files={key: FileEntry(e["path"], e["sha256"], e["bytes"]) for key, e in files.items()},
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


def _relative_inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts


PATTERNS: Mapping[str, Callable[[str], bool]] = {
    "sha256": lambda text: bool(_SHA256.fullmatch(text)),
    "relative_path": _relative_inside,
}
TYPES: Mapping[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str) and bool(v),
    "integer": _is_int,
    "number": _is_number,
    "string_list": lambda v: isinstance(v, list) and all(isinstance(c, str) and c for c in v),
    "number_pair": lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(c) for c in v),
}


def _limit(bound: int | float | str) -> float:
    """A rule's bound: a number, or the name of an entry of ``limits``."""
    return LIMITS[bound] if isinstance(bound, str) else bound


def _in_bounds(rule: Mapping, value: float, bound: float | None) -> bool:
    """The numeric conditions of one rule: min/max inclusive, above/below exclusive, a sibling relation."""
    checks = (
        ("min", lambda b: value >= b),
        ("max", lambda b: value <= b),
        ("above", lambda b: value > b),
        ("below", lambda b: value < b),
        ("multiple_of", lambda b: value % b == 0),
    )
    ok = all(test(_limit(rule[name])) for name, test in checks if name in rule)
    if "below_field" in rule:
        return ok and value < bound
    return ok and (bound is None or value <= bound)


class _Checker:
    """Walks ``bundle_rules.json`` over one ``model.json``; raises ``"<source>: <key> must be <rule> (got <v>)"``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, rule: str, section: Mapping, name: str) -> NoReturn:
        if name not in section:
            raise BundleError(f"{self.source}: {key} missing (must be {rule})")
        raise BundleError(f"{self.source}: {key} must be {rule} (got {shown(section[name])})")

    def fields(self, section: Mapping, rules: list[Mapping], prefix: str) -> None:
        """Check ``section``'s keys by ``rules`` in order (``prefix`` is the dotted path of ``section``)."""
        for rule in rules:
            if rule.get("optional") and rule["name"] not in section:
                continue
            self.value(section, rule["name"], rule, prefix + rule["name"])

    def value(self, section: Mapping, name: str, rule: Mapping, key: str) -> None:
        value = section.get(name)
        bound = _relation_bound(rule, section)
        text = rule["rule"].format(**LIMITS, bound=bound)
        if not (name in section and TYPES[rule["type"]](value) and self._meets(rule, value, bound)):
            self.fail(key, text, section, name)
        if rule["type"] != "object":
            return
        if rule.get("closed"):
            known = [child["name"] for child in rule["fields"]]
            for child in value:
                if child not in known:
                    raise BundleError(f"{self.source}: {key}.{child} is not a known key (known: {', '.join(known)})")
        self.fields(value, rule.get("fields", []), key + ".")
        if "each" in rule:
            for child in value:
                self.value(value, child, rule["each"], f"{key}.{child}")

    @staticmethod
    def _meets(rule: Mapping, value: object, bound: float | None) -> bool:
        kind = rule["type"]
        if kind == "string":
            return value in rule.get("one_of", [value]) and PATTERNS.get(rule.get("pattern"), bool)(value)
        if kind in ("integer", "number"):
            return _in_bounds(rule, value, bound)
        if kind == "string_list":
            return len(value) >= rule["min_items"]
        if kind == "number_pair":
            (low_min, low_max), (high_min, high_max) = rule["low"], rule["high"]
            return low_min <= value[0] <= low_max and high_min <= value[1] <= high_max
        return True


def _relation_bound(rule: Mapping, section: Mapping) -> int | None:
    """The bound a relation to a sibling (checked before it) sets, as the rule shows it; None without one.

    ``below_field``: the value must be below the sibling's; ``index_into``: at most the sibling list's last index.
    """
    if "below_field" in rule:
        return section[rule["below_field"]]
    if "index_into" in rule:
        return len(section[rule["index_into"]]) - 1
    return None
