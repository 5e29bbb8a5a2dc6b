"""Image quality gate: is this a fundus photograph fit to segment? A verdict, its reasons, its measures.

Every measure comes from the image itself, at a size fixed relative to the photograph or to its
field of view (FOV), so the same photograph at 0.5x, 1x and 2x gets the same verdict:

- *fundus present* (on the image resized to a long side of :data:`WORK_SIDE` px): the FOV of
  :func:`fundus_vessels.runtime.fov.fov_from_image`, a circle fitted to its edge, its share of the
  frame (``fov_fraction``), how well it matches the circle (``fov_roundness``, IoU), how much of
  the circle lies inside the frame (``fov_completeness``), its diameter in original pixels
  (``fov_diameter_px``), and its mean colour (``red_share``, ``blue_share`` of R+G+B);
- *illumination* (same image, inside the FOV): median luma (``brightness``), share of clipped
  pixels (``clipped_fraction``), spread of the smoothed luma (``unevenness``);
- *contrast and focus* (green channel resized so the FOV is :data:`FOCUS_DIAMETER` px across):
  vessel-scale detail over mean green (``contrast``), finest-scale detail over vessel-scale detail
  (``focus``);
- *noise and compression* (green channel at full resolution, a square inside the FOV):
  robust noise sigma over mean green (``noise``), gradient across the 8x8 JPEG grid over gradient
  elsewhere (``blockiness``);
- *after segmentation*: the vessel map's share of the FOV (``vessel_fraction``) and the share of
  vessel pixels in components spanning at least 1/20 of the FOV diameter (``vessel_connected``).

The C++ ``fundus-infer`` computes the same measures (cpp/src/quality.cpp); the thresholds and sizes
are in ``quality_limits.json``, which both read (:data:`CHECKS`), set on DRIVE and CHASE_DB1 and
degraded copies of them (``scripts/quality_eval.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources

import cv2
import numpy as np

from fundus_vessels.runtime.fov import fov_from_image
from fundus_vessels.runtime.pictures import rgb_view
from fundus_vessels.runtime.scale import ScaleDecision

QUALITY_MODES = ("flag", "refuse", "off")
VERDICTS = ("good", "usable", "reject")
# The tuned numbers live in quality_limits.json, which the C++ build embeds: one source for both.
LIMITS_FILE = "quality_limits.json"
LIMITS = json.loads(resources.files("fundus_vessels.runtime").joinpath(LIMITS_FILE).read_text(encoding="utf-8"))
_CONSTANTS = LIMITS["constants"]
WORK_SIDE = int(_CONSTANTS["work_side"])  # long side (px) of the image the FOV, colour and illumination are measured on
FOCUS_DIAMETER = int(_CONSTANTS["focus_diameter"])  # FOV diameter (px) at which contrast and focus are measured
PATCH_SIDE = int(_CONSTANTS["patch_side"])  # largest side (px) of the full-resolution square noise and blockiness use
EDGE_MARGIN = int(_CONSTANTS["edge_margin"])  # FOV edge points this close to the frame are the frame's edge
CLIP_LEVEL = int(_CONSTANTS["clip_level"])  # a pixel is clipped when its brightest channel reaches this
CONTRAST_FLOOR = float(_CONSTANTS["contrast_floor"])  # focus divides by at least this share of the mean green
CONNECTED_SPAN = float(_CONSTANTS["connected_span"])  # "connected": spans this share of the FOV diameter

NOT_FUNDUS = "not a fundus photograph"


@dataclass(frozen=True)
class Check:
    """A limit on one measure: beyond ``usable`` the image is usable, beyond ``reject`` rejected."""

    measure: str
    low: bool  # True: too low is bad; False: too high is bad
    usable: float | None
    reject: float | None
    reason: str

    def grade(self, value: float) -> int:
        """0 good, 1 usable, 2 reject."""

        def beyond(limit: float | None) -> bool:
            return limit is not None and (value < limit if self.low else value > limit)

        return 2 if beyond(self.reject) else 1 if beyond(self.usable) else 0


def _checks(group: str) -> tuple[Check, ...]:
    """The checks of ``group`` (image, vessel, scale) in :data:`LIMITS_FILE`, in its order."""
    return tuple(
        Check(c["measure"], bool(c["low"]), c.get("usable"), c.get("reject"), c["reason"])
        for c in LIMITS["checks"][group]
    )


# Limits set on data: every DRIVE and CHASE_DB1 image is good or usable, degraded copies fall at the
# levels docs/quality.md states (scripts/quality_eval.py prints the measures and the confusion table).
IMAGE_CHECKS = _checks("image")
VESSEL_CHECKS = _checks("vessel")
# the photograph's scale relative to the model's (runtime/scale.py): in_domain is 1 or 0
SCALE_CHECKS = _checks("scale")
CHECKS = IMAGE_CHECKS + VESSEL_CHECKS + SCALE_CHECKS


@dataclass
class Quality:
    """The gate's answer for one image: ``verdict`` good|usable|reject, why, and the measures."""

    verdict: str = "good"
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "measures": dict(self.measures),
        }

    @property
    def rejected(self) -> bool:
        return self.verdict == "reject"


def _grade(quality: Quality, checks: tuple[Check, ...]) -> Quality:
    """Apply ``checks`` to the measures: the worst grade is the verdict; reasons in check order."""
    worst = VERDICTS.index(quality.verdict)
    for check in checks:
        grade = check.grade(quality.measures[check.measure])
        if grade and check.reason not in quality.reasons:
            quality.reasons.append(check.reason)
        worst = max(worst, grade)
    quality.verdict = VERDICTS[worst]
    return quality


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging to shrink, bilinear to enlarge (the C++ side does the same)."""
    shrink = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(
        image,
        (width, height),
        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
    )


def _scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def _lower_median(values: np.ndarray) -> int:
    """Median of non-negative integers as the lower middle element (a histogram; C++ counts the same)."""
    if values.size == 0:
        return 0
    counts = np.cumsum(np.bincount(values.ravel().astype(np.int64)))
    return int(np.searchsorted(counts, (values.size - 1) // 2 + 1))


def _fit_circle(fov: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares (Kasa) circle through the FOV's edge points away from the frame; None if none fits."""
    height, width = fov.shape
    contours, _ = cv2.findContours(fov.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    x, y = points[:, 0], points[:, 1]
    keep = (x >= EDGE_MARGIN) & (x <= width - 1 - EDGE_MARGIN) & (y >= EDGE_MARGIN) & (y <= height - 1 - EDGE_MARGIN)
    x, y = x[keep], y[keep]
    if x.size < 16:
        return None
    # x^2 + y^2 + D x + E y + F = 0 by normal equations (the C++ side sums the same terms)
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    b = -(x * x + y * y)
    try:
        d, e, f = np.linalg.solve(a.T @ a, a.T @ b)
    except np.linalg.LinAlgError:
        return None
    cx, cy = -d / 2.0, -e / 2.0
    r2 = cx * cx + cy * cy - f
    if not r2 > 0 or math.sqrt(r2) > 2 * max(height, width):
        return None
    return float(cx), float(cy), math.sqrt(r2)


def _fov_measures(fov: np.ndarray, circle: tuple[float, float, float] | None) -> dict[str, float]:
    height, width = fov.shape
    inside = int(np.count_nonzero(fov))
    measures = {
        "fov_fraction": inside / fov.size,
        "fov_roundness": 0.0,
        "fov_completeness": 0.0,
    }
    if circle is not None:
        cx, cy, r = circle
        yy, xx = np.ogrid[0:height, 0:width]
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        union = int(np.count_nonzero(disc | fov))
        measures["fov_roundness"] = int(np.count_nonzero(disc & fov)) / union if union else 0.0
        measures["fov_completeness"] = min(1.0, int(np.count_nonzero(disc)) / (math.pi * r * r))
    return measures


def _colour_measures(small: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """Mean R, G, B shares inside the FOV, over unclipped pixels (clipping changes the ratios) if enough remain."""
    brightest = cv2.max(cv2.max(small[:, :, 0], small[:, :, 1]), small[:, :, 2])
    unclipped = fov & (brightest < CLIP_LEVEL)
    region = unclipped if np.count_nonzero(unclipped) >= 0.005 * max(1, np.count_nonzero(fov)) else fov
    means = [float(small[:, :, c][region].mean()) if region.any() else 0.0 for c in range(3)]
    total = sum(means)
    return {
        "red_share": means[0] / total if total else 0.0,
        "blue_share": means[2] / total if total else 0.0,
    }


def _illumination_measures(small: np.ndarray, fov: np.ndarray, diameter: float) -> dict[str, float]:
    """Median luma, share of clipped green and smoothed-luma spread (p95 - p5) / p50 inside the FOV."""
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    inside = luma[fov]
    count = max(1, inside.size)
    measures = {
        "brightness": _lower_median(inside) / 255.0,
        "clipped_fraction": int(np.count_nonzero(small[:, :, 1][fov] >= CLIP_LEVEL)) / count,
    }
    # illumination field: luma averaged over FOV pixels only, on a coarse grid, then smoothed
    cell = max(1, math.floor(diameter / 32.0))
    coarse = _scaled_size(*luma.shape, 1.0 / cell)
    weight = cv2.resize(fov.astype(np.float32), coarse, interpolation=cv2.INTER_AREA)
    total = cv2.resize(luma.astype(np.float32) * fov, coarse, interpolation=cv2.INTER_AREA)
    sigma = 2.0
    weight_s = cv2.GaussianBlur(weight, (0, 0), sigma)
    total_s = cv2.GaussianBlur(total, (0, 0), sigma)
    valid = weight > 0.99
    field_ = total_s[valid] / np.maximum(weight_s[valid], 1e-6)
    if field_.size < 4:
        measures["unevenness"] = 0.0
        return measures
    p5, p50, p95 = np.percentile(field_, [5, 50, 95])
    measures["unevenness"] = float((p95 - p5) / p50) if p50 > 0 else 0.0
    return measures


def _focus_measures(green: np.ndarray, fov_small: np.ndarray, diameter_px: float) -> dict[str, float]:
    """Contrast and focus of the green channel with the FOV resized to FOCUS_DIAMETER px."""
    height, width = green.shape
    size = _scaled_size(height, width, FOCUS_DIAMETER / max(diameter_px, 1.0))
    plane = _resize(green, *size).astype(np.float32)
    fov = cv2.resize(fov_small.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    rim = 2 * math.floor(0.04 * FOCUS_DIAMETER) + 1
    fov = cv2.erode(fov, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (rim, rim))) > 0
    if not fov.any():
        return {"contrast": 0.0, "focus": 0.0}
    fine = cv2.GaussianBlur(plane, (0, 0), 1.0)
    coarse = cv2.GaussianBlur(plane, (0, 0), 4.0)
    fine_detail = float(np.abs(plane - fine)[fov].mean())
    vessel_detail = float(np.abs(fine - coarse)[fov].mean())
    mean = float(plane[fov].mean())
    # a blur that erases the vessel scale too must not leave fine/vessel near 1: floor the denominator
    floor = max(vessel_detail, CONTRAST_FLOOR * mean)
    return {
        "contrast": vessel_detail / mean if mean > 0 else 0.0,
        "focus": fine_detail / floor if floor > 0 else 0.0,
    }


NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _patch_measures(green: np.ndarray, centre: tuple[float, float], radius: float) -> dict[str, float]:
    """Noise (Immerkaer's mask, median-based) and JPEG blockiness on a full-resolution square in the FOV."""
    height, width = green.shape
    side = min(PATCH_SIDE, math.floor(1.2 * radius))
    x0 = max(0, min(width - side, math.floor(centre[0] - side / 2)) // 8 * 8)
    y0 = max(0, min(height - side, math.floor(centre[1] - side / 2)) // 8 * 8)
    patch = green[y0 : y0 + side, x0 : x0 + side].astype(np.float32)
    if min(patch.shape) < 16:
        return {"noise": 0.0, "blockiness": 1.0}
    response = np.abs(cv2.filter2D(patch, -1, NOISE_KERNEL)[1:-1, 1:-1])
    sigma = _lower_median(response) / (6.0 * 0.6745)
    mean = float(patch.mean())
    # |difference| between neighbours across x = 8k-1 | 8k (a JPEG block edge) vs all other neighbours
    measures = {"noise": sigma / mean if mean > 0 else 0.0}
    ratios = []
    for diff in (np.abs(np.diff(patch, axis=1)), np.abs(np.diff(patch, axis=0)).T):
        edge = (np.arange(diff.shape[1])) % 8 == 7
        # +0.1 gray level: a patch flat inside its blocks (very low JPEG quality) stays finite and large
        ratios.append((float(diff[:, edge].mean()) + 0.1) / (float(diff[:, ~edge].mean()) + 0.1))
    measures["blockiness"] = float(np.mean(ratios))
    return measures


def image_measures(image: np.ndarray) -> dict[str, float]:
    """Every pre-segmentation measure of an RGB(A) or gray photograph (see the module docstring)."""
    rgb = rgb_view(image)  # 8-bit RGB: gray repeated, alpha dropped (as the overlay draws it); read only
    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    small = _resize(rgb, *_scaled_size(height, width, scale))
    fov = fov_from_image(small)
    circle = _fit_circle(fov)
    measures = _fov_measures(fov, circle)
    if circle is not None:
        centre, radius = (circle[0] / scale, circle[1] / scale), circle[2] / scale
    else:
        ys, xs = np.nonzero(fov)
        span = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) if xs.size else max(fov.shape)
        centre, radius = (
            ((xs.mean() / scale, ys.mean() / scale) if xs.size else (width / 2, height / 2)),
            span / 2 / scale,
        )
    measures["fov_diameter_px"] = 2.0 * radius
    measures.update(_colour_measures(small, fov))
    measures.update(_illumination_measures(small, fov, 2.0 * radius * scale))
    green = np.ascontiguousarray(rgb[:, :, 1])
    measures.update(_focus_measures(green, fov, 2.0 * radius))
    measures.update(_patch_measures(green, centre, radius))
    return measures


def assess_image(image: np.ndarray) -> Quality:
    """The pre-segmentation verdict of a photograph: measures graded by :data:`IMAGE_CHECKS`."""
    return _grade(Quality(measures=image_measures(image)), IMAGE_CHECKS)


def vessel_measures(mask: np.ndarray, fov: np.ndarray, fov_diameter_px: float) -> dict[str, float]:
    """Vessel share of the FOV and the share of vessel pixels in components spanning CONNECTED_SPAN."""
    inside = int(np.count_nonzero(fov))
    vessels = mask.astype(np.uint8)
    total = int(np.count_nonzero(vessels))
    measures = {
        "vessel_fraction": total / inside if inside else 0.0,
        "vessel_connected": 0.0,
    }
    if total:
        _, _, stats, _ = cv2.connectedComponentsWithStats(vessels, connectivity=8)
        span = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
        connected = stats[1:, cv2.CC_STAT_AREA][span >= CONNECTED_SPAN * fov_diameter_px].sum()
        measures["vessel_connected"] = int(connected) / total
    return measures


def assess_vessels(quality: Quality, mask: np.ndarray, fov: np.ndarray) -> Quality:
    """Add the vessel-map plausibility measures to ``quality`` and grade them (:data:`VESSEL_CHECKS`)."""
    quality.measures.update(vessel_measures(mask, fov, quality.measures["fov_diameter_px"]))
    return _grade(quality, VESSEL_CHECKS)


def assess_scale(quality: Quality, scale: ScaleDecision) -> Quality:
    """Grade the photograph's scale: FOV not found, or a factor outside the model's range, is at best usable."""
    quality.measures["scale_factor"] = scale.factor
    quality.measures["scale_in_domain"] = 1.0 if scale.in_domain else 0.0
    return _grade(quality, SCALE_CHECKS)


def rounded(quality: Quality, digits: int = 6) -> dict:
    """``quality.to_dict()`` with measures rounded for summary.json."""
    out = quality.to_dict()
    out["measures"] = {k: round(float(v), digits) for k, v in out["measures"].items()}
    return out
