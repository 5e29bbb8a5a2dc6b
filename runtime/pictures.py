"""Pictures a person reads at a glance: the vessel overlay, the demo's error map, legends and colour bars.

- :func:`overlay_rgb`: the photograph untouched, each vessel outlined by a one-pixel ring of
  :data:`OUTLINE_RGB` just outside it (the vessel pixels themselves keep their colour, so thin
  vessels stay visible). The C++ runtime draws the same ring (cpp/src/pipeline.cpp).
- :func:`error_map_rgb`: truth against prediction inside the FOV: true positives white, false
  positives :data:`FALSE_POSITIVE_RGB`, false negatives :data:`FALSE_NEGATIVE_RGB`, over the
  darkened photograph, with a legend strip naming the colours and the scores.
- :func:`colour_bar`: a labelled strip for a colour map (used under ``<stem>_measure.png``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fundus_vessels.runtime.preprocess import to_uint8

OUTLINE_RGB = (0, 255, 255)  # cyan: far from the orange-red of a fundus
TRUE_POSITIVE_RGB = (255, 255, 255)
FALSE_POSITIVE_RGB = (255, 64, 255)  # magenta: drawn but not in the truth
FALSE_NEGATIVE_RGB = (0, 160, 255)  # blue: in the truth, missed
BACKGROUND_DIM = 0.45  # photograph brightness under the error map and the calibre picture
LEGEND_RGB = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def rgb_view(photo: np.ndarray) -> np.ndarray:
    """The photograph as 8-bit RGB (gray repeated, alpha dropped), ``photo`` itself when it already is:
    for reading only (:func:`photo_rgb` is the copy to draw on)."""
    image = to_uint8(photo)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] >= 3:
        return np.ascontiguousarray(image[:, :, :3])
    return np.repeat(image[:, :, :1], 3, axis=2)


def photo_rgb(photo: np.ndarray) -> np.ndarray:
    """The photograph as 8-bit RGB (gray repeated, alpha dropped): a new array, never a view of ``photo``."""
    rgb = rgb_view(photo)
    return rgb.copy() if np.shares_memory(rgb, photo) else rgb


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels next to a vessel (3x3 neighbourhood) that are not vessel themselves."""
    vessels = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)  # 0/1, no copy of a bool mask
    grown = cv2.dilate(vessels, np.ones((3, 3), np.uint8))
    return grown > vessels  # the dilation covers every vessel pixel: larger only on the ring


def overlay_rgb(photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photograph with every vessel outlined in :data:`OUTLINE_RGB` (vessel pixels unchanged)."""
    rgb = photo_rgb(photo)
    rgb[outline(mask)] = OUTLINE_RGB
    return rgb


def dimmed(photo: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The photograph at :data:`BACKGROUND_DIM` brightness, or black when there is none."""
    if photo is None:
        return np.zeros((*shape, 3), np.uint8)
    return (photo_rgb(photo).astype(np.float32) * BACKGROUND_DIM + 0.5).astype(np.uint8)


def text_scale(width: int) -> tuple[float, int, int]:
    """(font scale, thickness, line height px) for legends on an image ``width`` pixels wide."""
    scale = max(0.35, min(1.2, width / 1400.0))
    thickness = 1 if scale < 0.8 else 2
    return scale, thickness, int(32 * scale) + 6


def legend_strip(width: int, items: Sequence[tuple[tuple[int, int, int] | None, str]]) -> np.ndarray:
    """A dark strip with one line of ``[swatch] label`` items (swatch None: text only)."""
    scale, thickness, line = text_scale(width)
    strip = np.full((line + 8, width, 3), 24, np.uint8)
    x, y = 8, line
    for colour, label in items:
        if colour is not None:
            cv2.rectangle(strip, (x, y - line + 10), (x + line - 12, y - 2), tuple(int(c) for c in colour), -1)
            x += line - 4
        cv2.putText(strip, label, (x, y - 4), FONT, scale, LEGEND_RGB, thickness, cv2.LINE_AA)
        x += cv2.getTextSize(label, FONT, scale, thickness)[0][0] + 2 * line // 2
    return strip


def error_map_rgb(
    photo: np.ndarray | None, truth: np.ndarray, prediction: np.ndarray, fov: np.ndarray, scores: dict | None = None
) -> np.ndarray:
    """Truth vs prediction inside ``fov`` over the darkened photograph, with a legend strip below."""
    truth, prediction, fov = truth.astype(bool) & fov, prediction.astype(bool) & fov, fov.astype(bool)
    image = dimmed(photo, truth.shape)
    image[truth & prediction] = TRUE_POSITIVE_RGB
    image[prediction & ~truth] = FALSE_POSITIVE_RGB
    image[truth & ~prediction] = FALSE_NEGATIVE_RGB
    items = [
        (TRUE_POSITIVE_RGB, "found"),
        (FALSE_POSITIVE_RGB, "false positive"),
        (FALSE_NEGATIVE_RGB, "false negative (missed)"),
    ]
    if scores:
        f1, sens, spec = scores["f1"], scores["sensitivity"], scores["specificity"]
        items.append((None, f"F1 {f1:.3f}  sens {sens:.3f}  spec {spec:.3f}"))
    return np.vstack([image, legend_strip(image.shape[1], items)])


def colour_bar(
    width: int, low: float, high: float, unit: str, title: str, colormap: int = cv2.COLORMAP_TURBO
) -> np.ndarray:
    """A strip: ``title``, a gradient of ``colormap`` from ``low`` to ``high`` with tick labels in ``unit``."""
    scale, thickness, line = text_scale(width)
    margin = max(8, width // 40)
    bar_width, bar_height = width - 2 * margin, max(10, line // 2)
    levels = np.linspace(0, 255, bar_width).astype(np.uint8).reshape(1, -1)
    gradient = cv2.applyColorMap(levels, colormap)[:, :, ::-1]
    strip = np.full((3 * line + bar_height, width, 3), 24, np.uint8)
    cv2.putText(strip, title, (margin, line - 4), FONT, scale, LEGEND_RGB, thickness, cv2.LINE_AA)
    top = line + 2
    strip[top : top + bar_height, margin : margin + bar_width] = np.repeat(gradient, bar_height, axis=0)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = margin + round(fraction * (bar_width - 1))
        label = f"{low + fraction * (high - low):.3g} {unit}"
        text_width = cv2.getTextSize(label, FONT, scale, thickness)[0][0]
        x_text = int(min(max(x - text_width // 2, 0), width - text_width))
        cv2.line(strip, (x, top + bar_height), (x, top + bar_height + 4), LEGEND_RGB, 1)
        cv2.putText(strip, label, (x_text, top + bar_height + line), FONT, scale, LEGEND_RGB, thickness, cv2.LINE_AA)
    return strip


def write_demo_pictures(
    out_dir, stem: str, photo: np.ndarray, truth: np.ndarray, mask: np.ndarray, fov: np.ndarray, scores: dict
) -> dict[str, str]:
    """The demo's ``<stem>_truth.png`` (the drawn vessel tree, 0/255) and ``<stem>_errors.png``
    (:func:`error_map_rgb`); returns ``{kind: file name}`` for the summary entry's outputs."""
    from pathlib import Path

    from fundus_vessels.runtime.imageio import write_image

    names = {"truth": f"{stem}_truth.png", "errors": f"{stem}_errors.png"}
    write_image(Path(out_dir) / names["truth"], truth.astype(np.uint8) * 255)
    write_image(Path(out_dir) / names["errors"], error_map_rgb(photo, truth, mask, fov, scores))
    return names
