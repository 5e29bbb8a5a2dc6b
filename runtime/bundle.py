"""The model bundle: a folder of ONNX files and ``model.json``, the contract after training.

``model.json`` holds everything a runtime needs (preprocessing, tiling, output class, threshold)
plus provenance (architecture, training recipe, metrics, tool versions, sha256 of each file).
It contains no JSON ``null`` so that OpenCV's ``cv::FileStorage`` reads it in the C++ runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fundus_vessels.runtime.bundle_schema import BUNDLE_FORMAT, BundleError, BundleSpec
from fundus_vessels.runtime.imageio import write_json
from fundus_vessels.runtime.preprocess import PreprocessConfig
from fundus_vessels.runtime.scale import ScaleConfig

__all__ = [
    "BUNDLE_FORMAT",
    "DEFAULT_BUNDLE",
    "DEFAULT_MODEL",
    "MODEL_JSON",
    "PRECISION_FILES",
    "Bundle",
    "BundleError",
    "BundleSpec",
    "bundle_path",
    "load_bundle",
    "sha256_file",
    "shipped_bundle",
    "shipped_names",
]

MODEL_JSON = "model.json"
# precision name -> key in model.json "files"
PRECISION_FILES = {
    "fp32": "model.onnx",
    "fp32_static": "model.static.onnx",
    "fp32_dynamic": "model.dynamic.onnx",  # model.onnx with any height and width: whole-image passes
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
    "int8_cpu": "model.int8cpu.onnx",
}
DEFAULT_MODEL = "unet-multicamera"


def shipped_bundle(name: str = DEFAULT_MODEL) -> Path:
    """Folder of a bundle shipped as package data in ``fundus_vessels.models`` (wheel or checkout)."""
    return Path(str(resources.files("fundus_vessels.models").joinpath(name)))


DEFAULT_BUNDLE = shipped_bundle()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A bundle: its folder, ``model.json`` as parsed (``meta``, provenance included) and its contract.

    ``spec`` (:class:`BundleSpec`) is validated from ``meta`` on construction, on :meth:`register_file`
    and on :meth:`save`, so no writer can save a ``model.json`` the loader refuses. The runtime reads
    settings from ``spec`` (through the properties below); ``meta`` is for provenance.
    """

    root: Path
    meta: dict
    spec: BundleSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.spec = BundleSpec.from_json(self.meta, self.meta_path)

    @property
    def meta_path(self) -> Path:
        return self.root / MODEL_JSON

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.spec.preprocess

    @property
    def tile(self) -> int:
        return self.spec.tiling.tile

    @property
    def overlap(self) -> int:
        return self.spec.tiling.overlap

    @property
    def whole_image(self) -> int:
        """Largest padded side (px) run as one whole-image pass instead of tiles (0: always tiles)."""
        return self.spec.tiling.whole_image

    @property
    def scale(self) -> ScaleConfig:
        """Scale normalisation settings (``model.json`` ``scale``; disabled when absent)."""
        return self.spec.scale

    @property
    def threshold(self) -> float:
        return self.spec.threshold

    @property
    def vessel_index(self) -> int:
        return self.spec.output.vessel_index

    @property
    def in_channels(self) -> int:
        return self.spec.input.channels

    def has(self, precision: str) -> bool:
        return precision in self.spec.files

    def model_path(self, precision: str = "fp32", verify: bool = True) -> Path:
        """Path of the ONNX file for ``precision``; checks its sha256 against ``model.json``."""
        files = self.spec.files
        if precision not in files:
            have = ", ".join(sorted(files)) or "none"
            raise BundleError(f"{self.root}: no {precision} model in {MODEL_JSON} (has: {have})")
        entry = files[precision]
        path = self.root / entry.path
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MODEL_JSON} but missing")
        if verify and sha256_file(path) != entry.sha256:
            raise BundleError(f"{path}: sha256 does not match {MODEL_JSON} (file changed or corrupted)")
        return path

    def save(self) -> None:
        """Check ``meta`` by the loader's rules (else :class:`BundleError`), then write ``model.json`` atomically."""
        self.spec = BundleSpec.from_json(self.meta, self.meta_path)
        write_json(self.meta_path, self.meta)

    def register_file(self, precision: str, path: Path, **extra: object) -> None:
        """Record a model file (path relative to the bundle, sha256, size) under ``precision``."""
        self.meta.setdefault("files", {})[precision] = {
            "path": Path(os.path.relpath(path, self.root)).as_posix(),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            **extra,
        }
        self.spec = BundleSpec.from_json(self.meta, self.meta_path)


MAX_JSON_DEPTH = 64  # model.json nests 4 deep; cpp/src/bundle.cpp kMaxJsonDepth (OpenCV's parser recurses)


def json_depth(text: str) -> int:
    """The deepest nesting of ``{``/``[`` in JSON ``text`` (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "}]":
            depth -= 1
    return deepest


def load_bundle(root: str | os.PathLike | None = None) -> Bundle:
    """Load and validate a bundle: a folder, or the name of a shipped bundle (default: :data:`DEFAULT_MODEL`).

    ``load_bundle("unet-drive")`` and ``fundus-infer --model unet-drive`` (Python or C++) read
    the same bundle; a folder of that name in the working directory comes first, as there.
    """
    folder = bundle_path(root) if root is not None else DEFAULT_BUNDLE
    meta_path = folder / MODEL_JSON
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder not found (shipped bundles: {', '.join(shipped_names())})")
    if not meta_path.is_file():
        raise BundleError(f"{folder}: not a model bundle ({MODEL_JSON} missing)")
    try:
        text = meta_path.read_text()
        if json_depth(text) > MAX_JSON_DEPTH:
            raise BundleError(f"{meta_path}: not a model.json (nested too deeply)")
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from exc
    return Bundle(folder, meta)  # validates every contract value (BundleSpec.from_json)


def shipped_names() -> list[str]:
    """Names of the bundles shipped in ``fundus_vessels.models`` (folders holding a model.json)."""
    root = resources.files("fundus_vessels.models")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath(MODEL_JSON).is_file())


def bundle_path(value: str | os.PathLike) -> Path:
    """``--model``: a bundle folder, or the name of a shipped bundle (``unet-multicamera``, ``unet-drive``)."""
    path = Path(value)
    if path.exists() or len(path.parts) != 1:
        return path
    return shipped_bundle(str(value)) if str(value) in shipped_names() else path
