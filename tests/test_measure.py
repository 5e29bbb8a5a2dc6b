"""Vessel measurements against answers known in advance: phantoms, the synthetic tree, units, CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from measure_phantoms import arc, band, disc, line, polyline_length, sierpinski_carpet, sinusoid

from fundus_vessels.runtime.imageio import write_image
from fundus_vessels.runtime.measure import analyse_mask, measure_mask
from fundus_vessels.runtime.measure.cli import main as measure_main
from fundus_vessels.runtime.measure.fractal import box_counting_dimension
from fundus_vessels.runtime.measure.truth import drawn_tree_figures
from fundus_vessels.runtime.measure.units import UM_PER_DEGREE, fov_diameter_px
from fundus_vessels.runtime.synthetic import make_synthetic_fundus

SHAPE = (600, 600)


@pytest.mark.parametrize("angle", [0, 17, 30, 45])
def test_straight_vessel_has_tortuosity_one_and_its_length(angle: float) -> None:
    f = measure_mask(band(SHAPE, line((100, 100), angle, 400), 5))
    assert f["segment_count"] == 1 and f["end_point_count"] == 2 and f["junction_count"] == 0
    assert abs(f["total_length_px"] - 400) <= 2.5, "length within half the width"
    assert abs(f["tortuosity_mean"] - 1.0) < 0.002
    assert f["curvature_mean_rad_per_px"] < 0.001


@pytest.mark.parametrize(("radius", "angle"), [(60, math.pi), (150, math.pi / 2), (200, 2.0)])
def test_arcs_have_the_tortuosity_and_curvature_of_their_circle(radius: float, angle: float) -> None:
    f = measure_mask(band(SHAPE, arc((400, 300), radius, angle), 5))
    assert f["tortuosity_mean"] == pytest.approx(angle / (2 * math.sin(angle / 2)), rel=0.01)
    assert f["curvature_mean_rad_per_px"] == pytest.approx(1 / radius, rel=0.10)
    assert f["total_length_px"] == pytest.approx(radius * angle, abs=2.5)


@pytest.mark.parametrize(("amplitude", "wavelength"), [(20, 200), (40, 160), (10, 120)])
def test_sinusoids_have_their_arc_over_chord(amplitude: float, wavelength: float) -> None:
    points = sinusoid((300, 50), amplitude, wavelength, 2.5)
    f = measure_mask(band(SHAPE, points, 5))
    truth = polyline_length(points) / float(np.hypot(*(points[-1] - points[0])))
    assert f["tortuosity_mean"] == pytest.approx(truth, rel=0.02)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 7, 9])
def test_axis_aligned_widths_are_read_exactly(width: int) -> None:
    centre = 300.5 if width % 2 == 0 else 300.0
    f = measure_mask(band(SHAPE, line((centre, 50), 0, 400), width + 0.001))
    assert f["calibre_median_px"] == pytest.approx(width, abs=0.01)


@pytest.mark.parametrize("width", [2, 3, 5, 7, 9])
@pytest.mark.parametrize("angle", [30, 45])
def test_oblique_widths_within_half_a_pixel_of_mean_width(width: int, angle: float) -> None:
    points = line((100, 100), angle, 400)
    mask = band(SHAPE, points, width)
    f = measure_mask(mask)
    mean_width = (mask.sum() - math.pi * width**2 / 4) / 400.0  # the band's area less its two round caps
    assert abs(f["calibre_median_px"] - mean_width) <= 0.5


@pytest.mark.parametrize("theta", [50, 70, 90, 120])
def test_y_has_its_branching_angle(theta: float) -> None:
    trunk = line((550, 300), -90, 250)
    mask = band(SHAPE, trunk, 7)
    for sign in (-1, 1):
        mask |= band(SHAPE, line(tuple(trunk[-1]), -90 + sign * theta / 2, 250), 3)
    f = measure_mask(mask)
    assert f["bifurcation_count"] == 1 and f["segment_count"] == 3 and f["end_point_count"] == 3
    assert f["branching_angle_deg_median"] == pytest.approx(theta, abs=3.0)


def whole_image_dimension(image: np.ndarray) -> float:
    """Box-counting dimension with the whole image as FOV, as measure_mask computes it."""
    return box_counting_dimension(image, (0, 0), fov_diameter_px(image.size))


def test_box_counting_dimension_of_line_disc_and_carpet() -> None:
    square = (1000, 1000)
    straight = band(square, line((500, 20), 0, 960), 1)
    assert whole_image_dimension(straight) == pytest.approx(1.0, abs=0.02)
    assert whole_image_dimension(disc(square, (500, 500), 480)) == pytest.approx(2.0, abs=0.07)
    assert whole_image_dimension(sierpinski_carpet(6)) == pytest.approx(math.log(8) / math.log(3), abs=0.07)
    f = measure_mask(straight)
    assert f["fractal_dimension_mask"] == f["fractal_dimension_skeleton"] == pytest.approx(1.0, abs=0.02)


def test_density_is_vessel_over_fov_pixels_and_fov_restricts() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10:20, :] = True
    fov = np.zeros_like(mask)
    fov[:50, :50] = True
    f = measure_mask(mask, fov)
    assert f["vessel_density"] == pytest.approx(500 / 2500) and f["fov_area_px"] == 2500
    assert f["fov_diameter_px"] == pytest.approx(2 * math.sqrt(2500 / math.pi))


def test_units_micrometres_and_fov_diameters() -> None:
    mask = band(SHAPE, line((300, 100), 0, 400), 5)
    f = measure_mask(mask, pixel_size_um=12.5)
    assert f["total_length_um"] == pytest.approx(f["total_length_px"] * 12.5)
    assert f["calibre_median_um"] == pytest.approx(f["calibre_median_px"] * 12.5)
    assert f["total_length_dfov"] == pytest.approx(f["total_length_px"] / f["fov_diameter_px"])
    assert f["curvature_mean_rad_per_um"] == pytest.approx(f["curvature_mean_rad_per_px"] / 12.5)
    g = measure_mask(mask, camera_fov_deg=45.0)
    assert g["pixel_size_um"] == pytest.approx(45.0 * UM_PER_DEGREE / g["fov_diameter_px"])
    assert measure_mask(mask)["total_length_um"] is None
    with pytest.raises(ValueError, match="not both"):
        measure_mask(mask, pixel_size_um=10.0, camera_fov_deg=45.0)


def test_empty_and_speck_masks_measure_without_error() -> None:
    empty = measure_mask(np.zeros((64, 64), bool))
    assert empty["segment_count"] == 0 and empty["vessel_density"] == 0.0 and math.isnan(empty["tortuosity_mean"])
    specks = np.zeros((64, 64), bool)
    specks[10, 10] = specks[30, 40] = True
    assert measure_mask(specks)["vessel_area_px"] == 2
    with pytest.raises(ValueError, match="FOV mask is"):
        measure_mask(np.zeros((8, 8)), np.ones((9, 9)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_fundus_measures_as_its_drawn_tree(seed: int) -> None:
    fundus = make_synthetic_fundus(seed=seed)
    truth = drawn_tree_figures(fundus)
    f = measure_mask(fundus.vessels, fundus.fov)
    assert f["vessel_density"] == pytest.approx(truth["vessel_density"])
    assert f["total_length_px"] == pytest.approx(truth["total_length_px"], rel=0.12)  # overlapping strokes merge
    assert abs(f["calibre_median_px"] - truth["calibre_median_px"]) <= 1.0
    assert f["tortuosity_mean"] == pytest.approx(truth["tortuosity_mean"], abs=0.03)


def test_long_winding_vessel_on_a_large_map_needs_no_recursion() -> None:
    """A spiral of ~17 000 px centreline: recursive walkers hit Python's limit (1000) here."""
    t = np.linspace(0, 14 * math.pi, 20000)
    radius = 30 + 22 * t
    points = np.stack([1200 + radius * np.sin(t), 1750 + radius * np.cos(t)], axis=1)
    mask = band((2336, 3504), points, 3)
    analysis = analyse_mask(mask)
    assert analysis.figures["total_length_px"] == pytest.approx(polyline_length(points), rel=0.02)
    assert max(len(s.pixels) for s in analysis.graph.segments) > 10000


def test_cli_on_masks_and_a_bad_file(tmp_path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    write_image(masks / "a_mask.png", band((200, 200), line((100, 20), 0, 160), 5).astype(np.uint8) * 255)
    write_image(masks / "b.png", band((200, 200), arc((150, 100), 60, 2.0), 3).astype(np.uint8) * 255)
    (masks / "c.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert measure_main([str(masks), "-o", str(out), "--pixel-size-um", "10", "--quiet"]) == 1
    rows = list(csv.DictReader((out / "measurements.csv").open()))
    assert [r["image"] for r in rows] == ["a", "b"]
    assert float(rows[0]["total_length_um"]) == pytest.approx(10 * float(rows[0]["total_length_px"]))
    segments = list(csv.DictReader((out / "segments.csv").open()))
    assert {s["image"] for s in segments} == {"a", "b"} and "tortuosity" in segments[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["succeeded"] == 2 and summary["failed"] == 1 and "c.png" in summary["failures"][0]["file"]
    assert (out / "a_measure.png").is_file()


def test_cli_refuses_another_tools_output_folder(tmp_path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"tool": "fundus-infer"}))
    mask = tmp_path / "m.png"
    write_image(mask, np.zeros((8, 8), np.uint8))
    assert measure_main([str(mask), "-o", str(tmp_path)]) == 2


def test_infer_measure_and_fundus_measure_on_its_folder_agree(tmp_path) -> None:
    from fundus_vessels.runtime.cli import main as infer_main

    run = tmp_path / "run"
    assert infer_main(["--demo", "--measure", "--quiet", "--pixel-size-um", "20", "-o", str(run)]) == 0
    entry = json.loads((run / "summary.json").read_text())["images"][0]
    measured, drawn = entry["measurements"], entry["measurements_drawn_tree"]
    assert measured["pixel_size_um"] == 20 and set(drawn) <= set(measured)
    assert measured["vessel_density"] == pytest.approx(drawn["vessel_density"], abs=0.08)
    out = tmp_path / "again"
    assert measure_main([str(run), "-o", str(out), "--pixel-size-um", "20", "--quiet"]) == 0
    row = next(csv.DictReader((out / "measurements.csv").open()))
    assert row["image"] == "demo" and float(row["total_length_px"]) == pytest.approx(
        measured["total_length_px"], rel=1e-5
    )
    assert row["fov_source"].startswith("auto from")
