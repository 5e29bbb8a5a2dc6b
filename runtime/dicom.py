"""DICOM for the clinic: fundus photographs read with pydicom, vessel masks written as DICOM Segmentation (highdicom).

pydicom and highdicom come with the ``clinic`` extra and are imported only when a DICOM file is met, so
``fundus-infer`` runs on PNG/JPEG/TIFF without them. Patient identifiers stay in the DICOM files: the summary
entry (:func:`dicom_summary`) holds none unless :func:`dicom_identifiers` is asked for them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fundus_vessels.runtime.extras import extra_hint
from fundus_vessels.runtime.file_io import ImageReadError, atomic_output, check_pixels
from fundus_vessels.runtime.outputs_guard import printable

DICOM_SUFFIXES = (".dcm", ".dicom")
DICOM_MAGIC_OFFSET = 128  # a Part 10 file: 128-byte preamble, then b"DICM"
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
# Type 2 attributes of the Patient and General Study modules: highdicom copies them into the Segmentation and
# needs them present (empty is allowed) in the source
TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
)
IDENTIFIERS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
}
# Attributes of the PS3.15 Basic Application Level Confidentiality Profile (table E.1-1) a fundus
# photograph may carry: their values never reach a message, summary.json or a file name unless
# --keep-identifiers (redact() scrubs messages; the summary holds only dicom_summary())
CONFIDENTIAL = (
    "AccessionNumber", "AcquisitionDate", "AcquisitionDateTime", "AcquisitionDeviceProcessingDescription",
    "AcquisitionTime", "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesDescription",
    "BranchOfService", "ContentCreatorName", "ContentDate", "ContentTime", "CountryOfResidence",
    "CurrentPatientLocation", "DerivationDescription", "DeviceSerialNumber", "DeviceUID", "EthnicGroup",
    "FrameOfReferenceUID", "ImageComments", "InstanceCreationDate", "InstanceCreationTime", "InstanceCreatorUID",
    "InstitutionAddress", "InstitutionName", "InstitutionalDepartmentName", "IssuerOfPatientID",
    "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank", "NameOfPhysiciansReadingStudy", "Occupation",
    "OperatorsName", "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientAge", "PatientBirthDate",
    "PatientBirthName", "PatientBirthTime", "PatientComments", "PatientID", "PatientMotherBirthName",
    "PatientName", "PatientReligiousPreference", "PatientSex", "PatientSize", "PatientState",
    "PatientTelephoneNumbers", "PatientWeight", "PerformedProcedureStepDescription", "PerformedProcedureStepID",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformingPhysicianName",
    "PhysiciansOfRecord", "ProtocolName", "ReferencedSOPInstanceUID", "ReferringPhysicianAddress",
    "ReferringPhysicianName", "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RequestedProcedureID",
    "RequestingPhysician", "ResponsiblePerson", "ScheduledProcedureStepID", "SeriesDate", "SeriesDescription",
    "SeriesInstanceUID", "SeriesTime", "SOPInstanceUID", "StationName", "StudyDate", "StudyDescription",
    "StudyID", "StudyInstanceUID", "StudyTime", "MediaStorageSOPInstanceUID",
)  # fmt: skip
REDACTED = "<redacted>"
_DATE_TIME_VRS = {"DA": r"\d{8}", "TM": r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", "DT": r"\d{4,14}(\.\d{1,6})?([+-]\d{4})?"}
SEG_SUFFIX = "_seg.dcm"
SEG_SERIES_NUMBER = 900
ANISOTROPY_TOLERANCE = 0.01  # row and column spacing closer than 1 % give one pixel size


def is_dicom(path: str | os.PathLike) -> bool:
    """A ``.dcm``/``.dicom`` name, or a file with the DICOM Part 10 preamble (camera exports often have no suffix)."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    if not p.is_file():  # opening a FIFO would block
        return False
    try:
        with open(p, "rb") as f:
            f.seek(DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _pydicom(path: Path) -> Any:
    try:
        import pydicom
    except ModuleNotFoundError as exc:
        raise ImageReadError(f"{printable(path)}: reading DICOM {extra_hint('clinic', 'pydicom')}") from exc
    return pydicom


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pydicom's and highdicom's warnings and log lines (which quote attribute values) kept off stderr."""
    loggers = [logging.getLogger(name) for name in ("pydicom", "highdicom")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _raw_values(ds: Any) -> Iterator[str]:
    """The text of every confidential attribute in ``ds``, its sequences and its file meta."""
    datasets = [ds, getattr(ds, "file_meta", None)]
    while datasets:
        item = datasets.pop()
        if item is None:
            continue
        for elem in item:
            if elem.VR == "SQ":
                datasets.extend(elem.value or ())
            elif elem.keyword in CONFIDENTIAL and elem.value not in (None, ""):
                values = elem.value if isinstance(elem.value, (list, tuple)) else [elem.value]
                yield from (str(v) for v in values)


def identifier_texts(ds: Any) -> list[str]:
    """Strings to scrub for ``ds``: each confidential value, a name's parts, a date's other spellings; longest first."""
    texts = set()
    with quiet():
        for value in _raw_values(ds):
            value = value.strip()
            texts.add(value)
            texts.update(part for part in re.split(r"[\^=]", value) if len(part.strip()) >= 3)
            digits = re.sub(r"\D", "", value)
            if len(digits) == 8 and value != digits:  # 1960-01-01 and 19600101
                texts.add(digits)
            if len(digits) == 8 and value == digits:
                texts.add(f"{digits[:4]}-{digits[4:6]}-{digits[6:]}")
    return sorted((t for t in texts if len(t) >= 2), key=len, reverse=True)


def redact(message: str, ds: Any) -> str:
    """``message`` with every identifier of ``ds`` (PS3.15 Basic Profile attributes) replaced by ``<redacted>``."""
    for text in identifier_texts(ds):
        message = message.replace(text, REDACTED)
    return message


def read_header(path: str | os.PathLike) -> Any:
    """The DICOM dataset of ``path`` without its pixel data (``pydicom.Dataset``)."""
    p = Path(path)
    pydicom = _pydicom(p)
    try:
        with quiet():
            return pydicom.dcmread(p, stop_before_pixels=True, force=True)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise ImageReadError(f"{printable(p)}: not a readable DICOM file ({exc.__class__.__name__})") from exc


def read_dicom_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a single-frame DICOM image as RGB or gray uint8/uint16, like :func:`imageio.read_image`.

    YBR colour is converted to RGB, MONOCHROME1 is inverted, PALETTE COLOR is looked up, and samples stored
    in fewer than 16 bits are scaled to the full 16-bit range. Compressed transfer syntaxes are decoded by
    pydicom's plugins (RLE natively, JPEG by pylibjpeg or Pillow).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{printable(p)}: no such file")
    pydicom = _pydicom(p)
    try:
        with quiet():
            ds = pydicom.dcmread(p, force=True)
    except Exception as exc:
        raise ImageReadError(f"{printable(p)}: not a readable DICOM file ({exc.__class__.__name__})") from exc
    _check_image(p, ds)
    try:
        with quiet():
            pixels = ds.pixel_array
    except Exception as exc:  # missing decoder plugin, truncated or corrupt pixel data
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        name = getattr(syntax, "name", None) or "unknown transfer syntax"
        reason = redact(" ".join(str(exc).split()), ds)
        missing = any(w in reason.lower() for w in ("plugin", "dependenc", "no module"))  # not: truncated data
        hint = "; the 'clinic' extra brings the JPEG decoders" if missing else ""
        raise ImageReadError(
            f"{printable(p)}: cannot decode the {name} pixel data ({exc.__class__.__name__}: {reason}){hint}"
        ) from exc
    return _to_display(p, ds, pixels)


def _check_image(p: Path, ds: Any) -> None:
    if "PixelData" not in ds:
        sop = getattr(ds.get("SOPClassUID"), "name", None) or "no SOP class"
        raise ImageReadError(f"{printable(p)}: DICOM file holds no image pixel data ({sop})")
    check_pixels(p, int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImageReadError(f"{printable(p)}: DICOM image has {frames} frames; only single-frame images are supported")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in PHOTOMETRICS:
        raise ImageReadError(f"{printable(p)}: unsupported DICOM photometric interpretation {photometric!r}")
    if int(ds.get("PixelRepresentation", 0)) != 0:
        raise ImageReadError(f"{printable(p)}: signed DICOM pixels are not a photograph (PixelRepresentation 1)")
    if int(ds.get("BitsAllocated", 0)) not in (8, 16):
        raise ImageReadError(
            f"{printable(p)}: DICOM BitsAllocated {ds.get('BitsAllocated')} is not supported (8 or 16)"
        )
    _check_native_length(p, ds)


def _check_native_length(p: Path, ds: Any) -> None:
    """Uncompressed pixel data must hold exactly Rows x Columns x samples x bytes (plus one pad byte).

    Otherwise the header is wrong (e.g. Columns one short) and the image would be read sheared or fail deep
    inside a library; it is refused instead.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or getattr(syntax, "is_compressed", True):
        return
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    expected = rows * columns * samples * bits // 8
    actual = len(ds.PixelData)
    if actual not in (expected, expected + 1):
        raise ImageReadError(
            f"{printable(p)}: DICOM pixel data holds {actual} bytes, but Rows {rows} x Columns {columns} x "
            f"{samples} sample(s) x {bits} bits make {expected}: the header does not describe the pixels"
        )


def _to_display(p: Path, ds: Any, pixels: np.ndarray) -> np.ndarray:
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
    stored = int(ds.get("BitsStored", ds.BitsAllocated))
    if photometric == "MONOCHROME1":
        pixels = (1 << stored) - 1 - pixels.astype(np.int64)
    pixels = pixels.astype(np.uint8 if pixels.max(initial=0) < 256 and ds.BitsAllocated == 8 else np.uint16)
    if pixels.dtype == np.uint16 and photometric != "PALETTE COLOR" and stored < 16:
        pixels = pixels << np.uint16(16 - stored)  # e.g. 12-bit samples: full 16-bit range, as 16-bit PNGs have
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.size == 0:
        raise ImageReadError(f"{printable(p)}: DICOM image has no pixels")
    return np.ascontiguousarray(pixels)


def pixel_spacing_mm(ds: Any) -> tuple[float, float] | None:
    """(row, column) spacing in millimetres from PixelSpacing, else ImagerPixelSpacing; None when absent."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            row, col = float(value[0]), float(value[1])
            if row > 0 and col > 0:
                return row, col
    return None


def pixel_size_um(spacing: tuple[float, float] | None) -> float | None:
    """One pixel size in micrometres for the measurements, or None when unknown or not square."""
    if spacing is None:
        return None
    row, col = spacing
    if abs(row - col) > ANISOTROPY_TOLERANCE * max(row, col):
        return None
    return round((row + col) / 2 * 1000.0, 6)


def dicom_summary(ds: Any) -> dict:
    """What the summary says about a DICOM input: no patient identifier, no UID."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    sop = ds.get("SOPClassUID")
    spacing = pixel_spacing_mm(ds)
    return {
        "sop_class": getattr(sop, "name", str(sop)) if sop else None,
        "modality": str(ds.get("Modality", "")) or None,
        "photometric": str(ds.get("PhotometricInterpretation", "")) or None,
        "transfer_syntax": getattr(syntax, "name", None),
        "pixel_spacing_mm": list(spacing) if spacing else None,
        "pixel_size_um": pixel_size_um(spacing),
    }


def dicom_identifiers(ds: Any) -> dict:
    """Patient and study identifiers of ``ds`` (only for ``--keep-identifiers``)."""
    return {key: str(ds.get(keyword, "")) for key, keyword in IDENTIFIERS.items()}


def _segmentation_source(ds: Any, spacing: tuple[float, float] | None) -> Any:
    """A copy of the source header that highdicom accepts (the file itself is not changed)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    source = copy.deepcopy(ds)
    for keyword in TYPE2_COPIED:
        if keyword not in source:
            setattr(source, keyword, "")
        elif source[keyword].VR in _DATE_TIME_VRS and not _valid_date_time(source[keyword]):
            source[keyword].value = ""  # e.g. "1960-01-01": not DICOM DA, highdicom would refuse the whole SEG
    # highdicom 0.28 reads the pixel measures of an IOD that allows several frames (Ophthalmic Photography
    # does) from a SharedFunctionalGroupsSequence, which photographs do not carry; single-frame IODs ignore it
    source.NumberOfFrames = 1
    measures = Dataset()
    if spacing is not None:
        measures.PixelSpacing = [f"{v:.6g}" for v in spacing]
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    source.SharedFunctionalGroupsSequence = Sequence([group])
    return source


def _valid_date_time(elem: Any) -> bool:
    value = elem.value
    text = str(value.original_string if hasattr(value, "original_string") else value).strip()
    return not text or re.fullmatch(_DATE_TIME_VRS[elem.VR], text) is not None


def _drop_empty_pixel_measures(seg: Any) -> None:
    """Remove the placeholder pixel measures :func:`_segmentation_source` gave a source without spacing."""
    for groups in (seg.get("SharedFunctionalGroupsSequence"), seg.get("PerFrameFunctionalGroupsSequence")):
        for item in groups or ():
            measures = item.get("PixelMeasuresSequence")
            if measures is not None and all(len(m) == 0 for m in measures):
                del item.PixelMeasuresSequence


def write_segmentation(path: str | os.PathLike, source: Any, mask: np.ndarray, model_name: str) -> None:
    """Write ``mask`` as a BINARY DICOM Segmentation of the image ``source`` (its header dataset), atomically.

    The Segmentation joins the source's study, references its Series and SOP Instance UIDs and is aligned
    pixel for pixel with it, so a PACS viewer shows the vessels over the photograph.
    """
    try:
        import highdicom as hd
        from pydicom.sr.codedict import codes
        from pydicom.uid import generate_uid
    except ModuleNotFoundError as exc:
        raise ValueError(f"--save dicom-seg {extra_hint('clinic', exc.name or 'highdicom')}") from exc
    if mask.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"mask shape {mask.shape} does not match the DICOM image {source.Rows}x{source.Columns}")
    version = _package_version()
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"fundus-vessels {model_name}", family=codes.cid7162.ArtificialIntelligence, version=version
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Retinal vessels",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=codes.SCT.BloodVesselStructure,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[codes.SCT.Retina],
    )
    with quiet():  # pydicom's warnings quote the values they complain about
        seg = hd.seg.Segmentation(
            source_images=[_segmentation_source(source, pixel_spacing_mm(source))],
            pixel_array=mask.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=generate_uid(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="fundus-vessels",
            manufacturer_model_name=model_name[:64],
            software_versions=version,
            device_serial_number="none",
            series_description="Retinal vessels (automatic)",
            content_description="Retinal vessels; screening support, not a diagnosis",
            content_label="VESSELS",
            omit_empty_frames=False,
        )
        _drop_empty_pixel_measures(seg)
        with atomic_output(path, suffix=".dcm") as tmp:
            seg.save_as(tmp, enforce_file_format=True)


def _package_version() -> str:
    try:
        return metadata.version("fundus-vessels")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"
