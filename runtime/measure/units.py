"""Units: every length in pixels, in FOV diameters (resolution-free) and, when the pixel size is
known, in micrometres.

The FOV diameter is the equivalent-circle diameter of the FOV mask, ``D = 2 * sqrt(A / pi)`` with
``A`` the FOV area in pixels (for a circular aperture it is the aperture's diameter; cropped
apertures still give one number that scales with resolution).

The pixel size follows from a camera's field of view as ``pixel_um = deg * UM_PER_DEGREE / D``:
the camera's angle of view spans the FOV diameter, and one degree of visual angle covers about
288 µm of retina in the Gullstrand schematic eye (axial length changes this by several percent;
give ``--pixel-size-um`` when it is known better, e.g. from DICOM Pixel Spacing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UM_PER_DEGREE = 288.0


@dataclass(frozen=True)
class Scale:
    """How one image's pixels convert: ``fov_diameter_px`` always, ``pixel_size_um`` when known."""

    fov_diameter_px: float
    pixel_size_um: float | None = None

    def lengths(self, name: str, value_px: float) -> dict[str, float | None]:
        """``{name}_px``, ``{name}_dfov`` (value / D) and ``{name}_um`` (None without a pixel size)."""
        return {
            f"{name}_px": value_px,
            f"{name}_dfov": value_px / self.fov_diameter_px,
            f"{name}_um": None if self.pixel_size_um is None else value_px * self.pixel_size_um,
        }

    def per_length(self, name: str, value_per_px: float) -> dict[str, float | None]:
        """An inverse length (e.g. curvature in rad/px): ``{name}_per_px``, ``_per_dfov``, ``_per_um``."""
        return {
            f"{name}_per_px": value_per_px,
            f"{name}_per_dfov": value_per_px * self.fov_diameter_px,
            f"{name}_per_um": None if self.pixel_size_um is None else value_per_px / self.pixel_size_um,
        }


def fov_diameter_px(fov_area_px: int) -> float:
    """Equivalent-circle diameter ``2 * sqrt(A / pi)`` of a FOV of ``fov_area_px`` pixels."""
    if fov_area_px <= 0:
        raise ValueError("the FOV mask is empty")
    return 2.0 * math.sqrt(fov_area_px / math.pi)


def pixel_size_from_camera_fov(camera_fov_deg: float, fov_diameter: float) -> float:
    """Micrometres per pixel for a camera of ``camera_fov_deg`` whose FOV is ``fov_diameter`` px wide."""
    if not 0.0 < camera_fov_deg < 180.0:
        raise ValueError(f"camera field of view must be in (0, 180) degrees, got {camera_fov_deg}")
    return camera_fov_deg * UM_PER_DEGREE / fov_diameter


def resolve_pixel_size(pixel_size_um: float | None, camera_fov_deg: float | None, fov_diameter: float) -> float | None:
    """The pixel size in µm from either source (never both), or None when neither is given."""
    if pixel_size_um is not None and camera_fov_deg is not None:
        raise ValueError("give the pixel size or the camera field of view, not both")
    if pixel_size_um is not None:
        if not pixel_size_um > 0.0:
            raise ValueError(f"pixel size must be > 0 µm, got {pixel_size_um}")
        return float(pixel_size_um)
    if camera_fov_deg is not None:
        return pixel_size_from_camera_fov(camera_fov_deg, fov_diameter)
    return None
