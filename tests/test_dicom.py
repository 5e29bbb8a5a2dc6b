"""DICOM in (pydicom) and out (DICOM Segmentation, highdicom), through runtime.imageio and fundus-infer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the 'clinic' extra is not installed")
pytest.importorskip("highdicom", reason="the 'clinic' extra is not installed")

from dicom_fixtures import (  # noqa: E402
    PATIENT_ID,
    PATIENT_NAME,
    SECONDARY_CAPTURE,
    jpeg_reference,
    make_dicom,
)
from runtime_fixtures import small_fundus, write_synthetic_images  # noqa: E402

from fundus_vessels.runtime import dicom  # noqa: E402
from fundus_vessels.runtime.cli import main  # noqa: E402
from fundus_vessels.runtime.imageio import ImageReadError, read_binary_mask, read_image  # noqa: E402

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return small_fundus(120, 100, seed=3)


@pytest.mark.parametrize(
    ("photometric", "syntax", "tolerance"),
    [
        ("RGB", "explicit", 0),
        ("RGB", "rle", 0),
        ("RGB", "jpeg2000", 0),
        ("YBR_FULL", "explicit", 2),
        ("YBR_FULL", "rle", 2),
    ],
)
def test_colour_dicom_reads_as_rgb(photometric, syntax, tolerance, rgb, tmp_path: Path) -> None:
    path = tmp_path / "photo.dcm"
    make_dicom(path, rgb, photometric=photometric, syntax=syntax)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == rgb.shape
    assert np.abs(image.astype(int) - rgb).max() <= tolerance


def test_jpeg_baseline_ybr_422_decodes_like_a_jpeg_file(rgb, tmp_path: Path) -> None:
    path = tmp_path / "camera.dcm"
    make_dicom(path, rgb, syntax="jpeg")
    image = read_image(path)
    # two JPEG decoders (pylibjpeg/Pillow vs OpenCV) differ by a few levels in chroma upsampling
    assert image.shape == rgb.shape
    assert np.abs(image.astype(int) - jpeg_reference(rgb)).max() <= 8
    assert np.abs(image.astype(int) - jpeg_reference(rgb)).mean() < 1.0


def test_monochrome_variants(rgb, tmp_path: Path) -> None:
    gray = rgb[:, :, 1].copy()
    make_dicom(tmp_path / "m2.dcm", gray, sop_class=SECONDARY_CAPTURE)
    assert np.array_equal(read_image(tmp_path / "m2.dcm"), gray)
    make_dicom(tmp_path / "m1.dcm", 255 - gray, sop_class=SECONDARY_CAPTURE, photometric="MONOCHROME1")
    assert np.array_equal(read_image(tmp_path / "m1.dcm"), gray)  # MONOCHROME1: 0 is white
    twelve = gray.astype(np.uint16) * 16  # 12-bit samples
    make_dicom(tmp_path / "m12.dcm", twelve, sop_class=SECONDARY_CAPTURE, bits_stored=12)
    image = read_image(tmp_path / "m12.dcm")
    assert image.dtype == np.uint16 and np.array_equal(image, twelve << 4)  # full 16-bit range


def test_dicom_without_suffix_is_found_by_its_preamble(rgb, tmp_path: Path) -> None:
    path = tmp_path / "1.2.826.0.1.3680043.99"
    make_dicom(path, rgb)
    assert dicom.is_dicom(path)
    assert np.array_equal(read_image(path), rgb)
    assert not dicom.is_dicom(write_synthetic_images(tmp_path / "png", count=1)[0])


def test_bad_dicom_files_are_named(rgb, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"\x00" * 200)
    with pytest.raises(ImageReadError, match=r"garbage\.dcm"):
        read_image(garbage)
    multi = tmp_path / "stereo.dcm"
    ds = make_dicom(multi, rgb)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(multi)
    with pytest.raises(ImageReadError, match=r"stereo.dcm: DICOM image has 2 frames"):
        read_image(multi)
    truncated = tmp_path / "truncated.dcm"
    make_dicom(truncated, rgb)
    truncated.write_bytes(truncated.read_bytes()[:-5000])
    with pytest.raises(ImageReadError, match=r"truncated\.dcm"):
        read_image(truncated)


def test_missing_pydicom_names_the_extra(rgb, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "photo.dcm"
    make_dicom(path, rgb)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImageReadError, match=r"photo.dcm: reading DICOM needs the 'clinic' extra"):
        read_image(path)


def test_pixel_spacing(rgb, tmp_path: Path) -> None:
    ds = make_dicom(tmp_path / "a.dcm", rgb, spacing_mm=(0.0065, 0.0065))
    assert dicom.pixel_spacing_mm(ds) == (0.0065, 0.0065)
    assert dicom.pixel_size_um((0.0065, 0.0065)) == 6.5
    assert dicom.pixel_size_um((0.005, 0.01)) is None  # not square: no single size
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.01, 0.01]
    assert dicom.pixel_spacing_mm(ds) == (0.01, 0.01)


def check_segmentation(seg_path: Path, source: Path, mask_png: Path) -> None:
    """The SEG holds the mask, references the source image and carries the attributes a viewer needs."""
    seg, src = pydicom.dcmread(seg_path), pydicom.dcmread(source)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY" and seg.BitsAllocated == 1
    assert (seg.Rows, seg.Columns) == (src.Rows, src.Columns) and int(seg.NumberOfFrames) == 1
    assert np.array_equal(seg.pixel_array.astype(bool), read_binary_mask(mask_png))
    # same patient and study, its own series
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID and seg.SOPInstanceUID != src.SOPInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == src.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPClassUID == src.SOPClassUID
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derivation.ReferencedSOPInstanceUID == src.SOPInstanceUID
    segment = seg.SegmentSequence[0]
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "Retinal vessels"
    assert segment.SegmentAlgorithmType == "AUTOMATIC" and segment.SegmentAlgorithmName.startswith("fundus-vessels")
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "59820001"  # SCT blood vessel structure
    for keyword in ("ContentLabel", "ContentDate", "ContentTime", "Manufacturer", "SoftwareVersions", "InstanceNumber"):
        assert keyword in seg, keyword


def run_cli(args: list[str], capsys) -> tuple[int, dict, str]:
    status = main([*args, "--quiet"])
    err = capsys.readouterr().err
    out_dir = Path(args[args.index("-o") + 1])
    return status, json.loads((out_dir / "summary.json").read_text()), err


def test_dicom_seg_from_synthetic_op_image(tmp_path: Path, capsys) -> None:
    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1), syntax="jpeg", spacing_mm=(0.008, 0.008))
    status, summary, err = run_cli([str(source), "-o", str(tmp_path / "out"), "--save", "mask,dicom-seg"], capsys)
    assert status == 0, summary
    entry = summary["images"][0]
    assert entry["outputs"] == {"mask": "eye_mask.png", "dicom-seg": "eye_seg.dcm"}
    assert entry["dicom"]["pixel_size_um"] == 8.0 and entry["dicom"]["pixel_spacing_mm"] == [0.008, 0.008]
    check_segmentation(tmp_path / "out" / "eye_seg.dcm", source, tmp_path / "out" / "eye_mask.png")
    text = (tmp_path / "out" / "summary.json").read_text() + err
    src = pydicom.dcmread(source)
    for secret in (PATIENT_ID, "Doe", src.StudyInstanceUID, src.SOPInstanceUID):
        assert secret not in text


def test_keep_identifiers_puts_them_in_the_summary(tmp_path: Path, capsys) -> None:
    source = tmp_path / "eye.dcm"
    make_dicom(source, small_fundus(300, 280), sop_class=SECONDARY_CAPTURE)
    status, summary, _ = run_cli([str(source), "-o", str(tmp_path / "out"), "--keep-identifiers"], capsys)
    assert status == 0
    assert summary["images"][0]["dicom"]["patient_id"] == PATIENT_ID
    assert summary["images"][0]["dicom"]["patient_name"] == PATIENT_NAME
    assert summary["images"][0]["dicom"]["pixel_size_um"] is None  # no spacing in the file


def test_dicom_seg_of_a_png_is_a_clear_failure(tmp_path: Path, capsys) -> None:
    png = write_synthetic_images(tmp_path / "in", count=1)[0]
    out = tmp_path / "out"
    status, summary, err = run_cli([str(png), "-o", str(out), "--save", "mask,dicom-seg"], capsys)
    assert status == 1
    assert "--save dicom-seg needs a DICOM input" in summary["failures"][0]["error"]
    assert str(png) in err
    assert not list(out.glob("fundus0_*"))  # nothing half-written for that image


@pytest.mark.data
def test_dicom_seg_of_a_drive_photograph(data_root: Path, tmp_path: Path, capsys) -> None:
    """A DRIVE test image as a camera's JPEG Ophthalmic Photography file: segmented, SEG read back."""
    photo = read_image(data_root / "DRIVE" / "test" / "images" / "01_test.tif")
    source = tmp_path / "01_test.dcm"
    make_dicom(source, photo, syntax="jpeg", spacing_mm=(0.0125, 0.0125))
    status, summary, _ = run_cli([str(source), "-o", str(tmp_path / "out"), "--save", "mask,dicom-seg"], capsys)
    assert status == 0, summary
    check_segmentation(tmp_path / "out" / "01_test_seg.dcm", source, tmp_path / "out" / "01_test_mask.png")
    # the JPEG round trip barely changes the segmentation of the original TIFF
    status, plain, _ = run_cli([str(data_root / "DRIVE/test/images/01_test.tif"), "-o", str(tmp_path / "tif")], capsys)
    assert status == 0
    assert abs(plain["images"][0]["vessel_fraction"] - summary["images"][0]["vessel_fraction"]) < 0.01


def test_measure_uses_the_dicom_pixel_spacing(tmp_path: Path, capsys) -> None:
    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1), syntax="jpeg", spacing_mm=(0.008, 0.008))
    status, summary, _ = run_cli([str(source), "-o", str(tmp_path / "out"), "--quality", "off", "--measure"], capsys)
    assert status == 0, summary
    figures = summary["images"][0]["measurements"]
    assert figures["total_length_px"] > 0
    assert figures["total_length_um"] == pytest.approx(figures["total_length_px"] * 8.0, rel=1e-4)


def test_cpp_binary_refuses_dicom_and_names_the_python_route(cpp_binary: Path, tmp_path: Path) -> None:
    import subprocess

    source = tmp_path / "in" / "eye.dcm"
    source.parent.mkdir()
    make_dicom(source, small_fundus(300, 280, seed=1), syntax="explicit")
    proc = subprocess.run([str(cpp_binary), str(source), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert f"{source}: DICOM is not supported by the C++ binary" in proc.stderr
    assert "'clinic' extra" in proc.stderr
    assert not list((tmp_path / "out").glob("eye_*.png"))
