"""Test DICOM files made from images in memory (pydicom): Ophthalmic Photography and Secondary Capture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless, generate_uid

OP_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"  # Ophthalmic Photography 8 Bit Image Storage
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
PATIENT_ID = "PAT-SECRET-4711"
PATIENT_NAME = "Doe^Jane"


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    sop_class: str = OP_8BIT,
    photometric: str | None = None,
    syntax: str = "explicit",
    spacing_mm: tuple[float, float] | None = None,
    bits_stored: int | None = None,
) -> Dataset:
    """Write ``pixels`` (RGB or gray, uint8/uint16) as a DICOM file; returns the dataset written.

    ``photometric``: RGB, YBR_FULL (stored converted), MONOCHROME1/2; ``syntax``: explicit, rle, jpeg2000
    (lossless) or jpeg (JPEG baseline, YBR_FULL_422, encoded by OpenCV as a camera would).
    """
    colour = pixels.ndim == 3
    photometric = photometric or ("RGB" if colour else "MONOCHROME2")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = PATIENT_ID, PATIENT_NAME, "19600101", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyID, ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "1", "20240102", "1200", "A1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Modality = "OP" if sop_class == OP_8BIT else "OT"
    ds.Manufacturer = "test camera"
    ds.Laterality = "R"
    if sop_class == OP_8BIT:
        ds.NumberOfFrames = 1
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if spacing_mm is not None:
        ds.PixelSpacing = [f"{v:.6g}" for v in spacing_mm]
    ds.PhotometricInterpretation = photometric
    stored = convert_color_space(pixels, "RGB", "YBR_FULL") if photometric == "YBR_FULL" else pixels
    if syntax == "jpeg":
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate([jpeg.tobytes()])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"
        if syntax in ("rle", "jpeg2000"):
            ds.compress(RLELossless if syntax == "rle" else JPEG2000Lossless)
    ds.save_as(path, enforce_file_format=True)
    return ds


def jpeg_reference(pixels: np.ndarray) -> np.ndarray:
    """What OpenCV decodes from the JPEG that :func:`make_dicom` embeds (RGB)."""
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
