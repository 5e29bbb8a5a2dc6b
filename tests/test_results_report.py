"""results.csv, report.html, the pictures and the Python API's save()/to_dict() (issue 24).

The report test opens report.html in headless Chromium (Debian package ``chromium``) and reads
the page's own verdict from ``#report-status``: every thumbnail loaded, no script error.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from browser import dump_dom, find_chromium, report_status
from runtime_fixtures import write_synthetic_images

from fundus_vessels.runtime import cli
from fundus_vessels.runtime.imageio import read_image
from fundus_vessels.runtime.pictures import FALSE_NEGATIVE_RGB, FALSE_POSITIVE_RGB, OUTLINE_RGB, overlay_rgb
from fundus_vessels.runtime.pipeline import Segmenter
from fundus_vessels.runtime.report_html import histogram_svg, render_report
from fundus_vessels.runtime.results_table import (
    BASE_COLUMNS,
    MEASURE_COLUMNS,
    MEASURE_FIGURES,
    columns,
    read_results,
    summary_rows,
    write_rows,
)
from fundus_vessels.runtime.synthetic import make_synthetic_fundus


def test_measure_columns_are_the_analysis_figures() -> None:
    from fundus_vessels.runtime.measure.analysis import analyse_mask
    from fundus_vessels.runtime.synthetic import make_synthetic_fundus

    drawn = make_synthetic_fundus(200, 220)
    figures = analyse_mask(drawn.vessels, drawn.fov, 10.0).figures
    assert [f for f in figures if f in MEASURE_FIGURES] == list(MEASURE_FIGURES)  # same names, same order
    assert set(figures) - set(MEASURE_FIGURES) == {"width_px", "height_px", "fov_area_px"}  # the image's size
    assert columns(True) == BASE_COLUMNS + MEASURE_COLUMNS


def test_rows_from_a_summary_every_status_and_quoting(tmp_path: Path) -> None:
    scale = {"factor": 0.8123, "method": "fov", "fov_diameter": 800.0, "in_domain": True}
    good, usable = {"verdict": "good", "reasons": []}, {"verdict": "usable", "reasons": ["noisy", "dim"]}
    dark = {"verdict": "reject", "reasons": ["too dark"]}
    summary = {
        "images": [
            {"file": "a,b.png", "seconds": 1.5, "vessel_fraction": 0.12, "scale": scale, "quality": good},
            {"file": "old.png", "seconds": 2.0, "vessel_fraction": 5e-05, "quality": usable},
            {"file": "dark.png", "refused": True, "quality": dark, "outputs": {}},
            {"file": "m.png", "seconds": 1.0, "vessel_fraction": 0.1, "measurements": {"vessel_density": 0.1}},
        ],
        "failures": [{"file": "bad.png", "error": 'bad.png: not "an" image'}, {"file": "m.png", "error": "no mask"}],
    }
    rows = summary_rows(summary)
    assert [(r["file"], r["status"]) for r in rows] == [
        ("a,b.png", "ok"),
        ("old.png", "ok"),
        ("dark.png", "refused"),
        ("m.png", "failed"),  # segmented, then measuring failed: one row
        ("bad.png", "failed"),
    ]
    assert rows[1]["scale_factor"] == 1.0 and rows[1]["scale_method"] == "none"  # no scale recorded
    assert rows[2]["reason"] == "quality gate: too dark" and rows[3]["reason"] == "no mask"
    path = write_rows(tmp_path / "results.csv", rows, measure=True)
    text = path.read_text()
    assert "\r" not in text and text.splitlines()[0] == ",".join(columns(True))
    assert text.splitlines()[1].startswith('"a,b.png",ok,,good,,0.8123,fov,0.12,1.5,')
    assert ",usable,noisy; dim,1.0,none,5e-05,2.0," in text
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[4]["reason"] == 'bad.png: not "an" image' and back[4]["vessel_fraction"] == ""
    assert back[3]["measure_vessel_density"] == "0.1"


@pytest.fixture(scope="module")
def infer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fundus-infer (shipped model) on two photographs, a bad file and the demo, measured, with a report."""
    root = tmp_path_factory.mktemp("issue24")
    photos = write_synthetic_images(root / "in", count=2)
    (root / "in" / "bad.png").write_bytes(b"not an image")
    out = root / "out"
    code = cli.main([str(root / "in"), "-o", str(out), "--demo", "--measure", "--report", "--quiet", "--threads", "1"])
    assert code == 1  # bad.png failed
    assert len(photos) == 2
    return out


def test_fundus_infer_results_csv_and_pictures(infer_run: Path) -> None:
    rows = read_results(infer_run / "results.csv")
    assert list(rows[0]) == list(columns(True))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert rows[2]["file"] == "demo_input.png" and rows[3]["file"].endswith("bad.png")
    assert all(float(r["measure_vessel_density"]) > 0 for r in rows[:3])
    # the demo's truth and error map: false positives and negatives in their two colours
    errors = read_image(infer_run / "demo_errors.png")
    assert (errors == FALSE_POSITIVE_RGB).all(axis=2).any() and (errors == FALSE_NEGATIVE_RGB).all(axis=2).any()
    assert read_image(infer_run / "demo_truth.png").max() == 255
    picture = read_image(infer_run / "demo_measure.png")  # the colour bar below the picture
    assert picture.shape[0] > read_image(infer_run / "demo_mask.png").shape[0]


def test_demo_score_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--demo", "-o", str(tmp_path), "--save", "mask", "--threads", "1"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("demo score: F1 "))
    assert float(line.split()[3].rstrip(",")) > 0.5 and "demo_errors.png" in line


def test_overlay_outlines_and_keeps_vessel_pixels() -> None:
    photo = np.full((20, 20, 3), 120, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 9:11] = True
    out = overlay_rgb(photo, mask)
    assert (out[mask] == 120).all()  # the vessel itself is not painted over
    assert (out[5:15, 8] == OUTLINE_RGB).all() and (out[5:15, 11] == OUTLINE_RGB).all()
    assert (out[0, 0] == 120).all()
    assert (photo == 120).all()  # drawn on a copy: the caller's photograph is untouched


def test_saving_a_result_leaves_the_photograph_as_it_was(tmp_path: Path) -> None:
    photo = make_synthetic_fundus(160, 192, seed=3).image_rgb
    before = photo.copy()
    result = Segmenter(threads=1).segment(photo)
    result.save(tmp_path)
    np.testing.assert_array_equal(photo, before)
    np.testing.assert_array_equal(result.photo, before)


def test_api_takes_a_path_and_gives_the_cli_row(infer_run: Path, tmp_path: Path) -> None:
    rows = {r["file"]: r for r in read_results(infer_run / "results.csv")}
    photo = next(f for f, r in rows.items() if r["status"] == "ok" and f != "demo_input.png")
    result = Segmenter(threads=1).segment(photo)
    written = result.save(tmp_path)
    stem = Path(photo).stem
    assert written == {k: f"{stem}_{k}.png" for k in ("mask", "prob", "overlay")}
    for name in written.values():
        assert (read_image(tmp_path / name) == read_image(infer_run / name)).all(), name
    row = result.to_dict()
    assert list(row) == list(BASE_COLUMNS)
    expected = rows[photo]
    for column in ("file", "status", "quality_verdict", "quality_reasons", "scale_method", "vessel_fraction"):
        assert str(row[column]) == expected[column], column


def test_report_is_self_contained(infer_run: Path) -> None:
    text = (infer_run / "report.html").read_text()
    assert "http://" not in text and "https://" not in text and 'src="data:' not in text  # thumbnails via script
    assert text.count("data:image/webp;base64,") == 3  # photo | overlay | probability strip per image
    assert "bad.png" in text and "Histograms of the" in text
    assert histogram_svg([], "empty") == ""
    assert "<\\/script>" in render_report(infer_run, {"images": [], "failures": [{"file": "</script>", "error": "x"}]})


def test_report_in_a_real_browser(infer_run: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    status = report_status(dump_dom(chromium, infer_run / "report.html"))
    assert status["state"] == "ready", status
    assert status["loaded"] == "3" and status["failed"] == "0" and status["errors"] == "0", status
