"""Scale normalisation: resample a photograph so its field of view has the bundle's reference diameter.

Cameras differ by 5x in pixels per degree of retina (DRIVE's FOV is ~540 px across, a 3504x2336
camera's ~3300 px). The model sees vessels at one scale, so every photograph is brought to it:

- the FOV diameter is the larger side of the FOV mask's bounding box (a disc clipped at the top and
  bottom of the frame keeps its width);
- ``factor = reference / diameter``; within ``tolerance`` of 1 nothing is resampled;
- a photograph whose FOV cannot be found (the mask touches every border or covers nearly the whole
  frame) falls back to ``diameter = longer image side`` and says so (``method = "image-size"``);
- shrinking uses area averaging (``INTER_AREA``), enlarging bilinear; masks use nearest neighbour;
  the probability comes back to the input size bilinearly.

Training, evaluation and every runtime call :func:`decide_scale` and :func:`resample`; the C++ binary
mirrors them (``cpp/src/scale.cpp``). Settings come from ``model.json``'s ``scale`` section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# the FOV is "not found" when its mask covers more than this share of the frame and touches every border
FOV_FOUND_MAX_COVER = 0.97
METHODS = ("fov", "image-size", "fixed", "none")


@dataclass(frozen=True)
class ScaleConfig:
    """``model.json``'s ``scale`` section.

    Args:
        reference_diameter: FOV diameter in pixels the model was trained at (0: no scale normalisation).
        tolerance: ``|factor - 1|`` below this leaves the photograph as it is.
        factor_range: factors the model is in domain for; outside it the quality verdict warns.
    """

    reference_diameter: float = 0.0
    tolerance: float = 0.05
    factor_range: tuple[float, float] = (0.1, 1.5)

    def __post_init__(self) -> None:
        low, high = self.factor_range
        if self.reference_diameter < 0 or not 0 <= self.tolerance < 1 or not 0 < low <= 1 <= high:
            raise ValueError(f"invalid scale settings: {self}")

    @property
    def enabled(self) -> bool:
        return self.reference_diameter > 0

    def to_dict(self) -> dict:
        values = asdict(self)
        values["factor_range"] = list(self.factor_range)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ScaleConfig:
        values = dict(values)
        if "factor_range" in values:
            values["factor_range"] = tuple(float(v) for v in values["factor_range"])
        return cls(**values)


@dataclass(frozen=True)
class ScaleDecision:
    """How one photograph is resampled: ``factor`` (output/input size), how it was found, and why."""

    factor: float
    method: str  # fov | image-size | fixed | none
    fov_diameter: float | None  # pixels, as measured (None when not measured)
    in_domain: bool = True
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "factor": round(self.factor, 4),
            "method": self.method,
            "fov_diameter": None if self.fov_diameter is None else round(self.fov_diameter, 1),
            "in_domain": self.in_domain,
            **({"note": self.note} if self.note else {}),
        }


def fov_diameter(fov: np.ndarray) -> float | None:
    """Diameter in pixels of the FOV disc (larger side of its bounding box); ``None`` if not found."""
    rows, cols = np.flatnonzero(fov.any(axis=1)), np.flatnonzero(fov.any(axis=0))
    if rows.size == 0:
        return None
    height, width = fov.shape[:2]
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    touches_all = top == 0 and left == 0 and bottom == height - 1 and right == width - 1
    if touches_all and np.count_nonzero(fov) > FOV_FOUND_MAX_COVER * fov.size:
        return None
    return float(max(bottom - top + 1, right - left + 1))


def decide_scale(fov: np.ndarray, config: ScaleConfig, requested: str | float = "auto") -> ScaleDecision:
    """The factor for a photograph with FOV mask ``fov``; ``requested`` is ``auto``, ``none`` or a factor."""
    if requested == "none" or (requested == "auto" and not config.enabled):
        note = "" if requested == "none" else "bundle has no scale reference"
        return ScaleDecision(1.0, "none", None, True, note)
    if not isinstance(requested, str):
        return _with_domain(ScaleDecision(float(requested), "fixed", None), config)
    diameter = fov_diameter(fov)
    if diameter is None:
        diameter = float(max(fov.shape[:2]))
        decision = ScaleDecision(
            config.reference_diameter / diameter, "image-size", diameter, False, "FOV not found: scaled by image size"
        )
        return _snap(decision, config)
    return _with_domain(_snap(ScaleDecision(config.reference_diameter / diameter, "fov", diameter), config), config)


def _snap(decision: ScaleDecision, config: ScaleConfig) -> ScaleDecision:
    if abs(decision.factor - 1.0) < config.tolerance:
        return ScaleDecision(1.0, decision.method, decision.fov_diameter, decision.in_domain, decision.note)
    return decision


def _with_domain(decision: ScaleDecision, config: ScaleConfig) -> ScaleDecision:
    low, high = config.factor_range
    if low <= decision.factor <= high:
        return decision
    note = f"scale factor {decision.factor:.3g} outside the model's range [{low:g}, {high:g}]"
    return ScaleDecision(decision.factor, decision.method, decision.fov_diameter, False, note)


def scaled_size(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    """``(width, height)`` of an image of ``shape`` resampled by ``factor`` (at least 1x1)."""
    return max(1, round(shape[1] * factor)), max(1, round(shape[0] * factor))


def resample(image: np.ndarray, factor: float, kind: str = "image") -> np.ndarray:
    """Resample by ``factor``: ``image`` (area down, bilinear up) or ``mask`` (nearest; bool stays bool)."""
    if factor == 1.0:
        return image
    size = scaled_size(image.shape, factor)
    if kind == "mask":
        out = cv2.resize(image.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        return out.astype(bool) if image.dtype == bool else out
    if kind != "image":
        raise ValueError(f"kind must be 'image' or 'mask', got {kind!r}")
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def resample_back(probability: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A probability map computed at the model's scale, brought back bilinearly to ``shape[:2]``."""
    if probability.shape[:2] == tuple(shape[:2]):
        return probability
    return cv2.resize(probability, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def resample_label(label: np.ndarray, factor: float) -> np.ndarray:
    """A binary vessel label at ``factor``: area-averaged then thresholded at one half (thin vessels kept)."""
    if factor == 1.0:
        return label
    averaged = cv2.resize(label.astype(np.float32), scaled_size(label.shape, factor), interpolation=cv2.INTER_AREA)
    return averaged >= 0.5


def parse_scale(value: str) -> str | float:
    """``--scale``: ``auto``, ``none`` or a positive factor (e.g. ``0.25``)."""
    if value in ("auto", "none"):
        return value
    try:
        factor = float(value)
    except ValueError:
        raise ValueError(f"--scale must be auto, none or a positive number, got {value!r}") from None
    if not 0.01 <= factor <= 4:
        raise ValueError(f"--scale factor must be in [0.01, 4], got {value!r}")
    return factor
