"""Radiographs as a station sends them: phantom hands as complete DX (for presentation) datasets, for the DICOM
output and node tests.

A dataset here carries what a real DX object carries for identity and references (patient, study, series, instance,
Image Laterality, spacing), so the tests can check that results copy and reference it.
"""
from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
except ImportError:  # pragma: no cover - the dicom extra is needed by every test that imports this
    pydicom = None

DX_SOP = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
SPACING_MM = 0.2


def binaries_missing(*names: str) -> list[str]:
    """The names of ``names`` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


@lru_cache(maxsize=8)
def phantom_pixels(seed: int) -> tuple[np.ndarray, str]:
    """(uint8 H x W image, side "L"/"R") of the synthetic phantom hand ``seed`` (bone bright)."""
    from ramh_train.phantoms import generate

    s = generate(seed)
    return s.image, s.meta.get("side") or s.stem[-1]


def dx_dataset(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", laterality: str | None = None,
               patient_id: str = "RAMH-TEST-1", study_uid: str | None = None, description: str = "hand PA") -> Dataset:
    """A complete DX For Presentation dataset (explicit VR little endian) of ``pixels`` (bone bright; uint8/uint16).

    MONOCHROME1 stores the inverted values (``max - v``), as a station with that encoding would.
    """
    pix = np.asarray(pixels)
    bits = pix.dtype.itemsize * 8
    stored = (np.iinfo(pix.dtype).max - pix).astype(pix.dtype) if photometric == "MONOCHROME1" else pix
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DX_SOP
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Phantom^Hand"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "ACC1"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Modality = "DX"
    ds.Manufacturer = "phantom station"
    ds.SeriesDescription = description
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "HAND"
    ds.ImageLaterality = laterality or "U"
    ds.PatientOrientation = ["", ""]
    ds.ImagerPixelSpacing = [SPACING_MM, SPACING_MM]
    ds.PixelSpacing = [SPACING_MM, SPACING_MM]
    ds.Rows, ds.Columns = pix.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def two_hand_pixels(seed_a: int, seed_b: int) -> np.ndarray:
    """Two phantom hands side by side on one film, the second mirrored (a left and a right hand)."""
    a, _ = phantom_pixels(seed_a)
    b, _ = phantom_pixels(seed_b)
    b = b[:, ::-1]
    h = max(a.shape[0], b.shape[0])
    pad = lambda x: np.pad(x, ((0, h - x.shape[0]), (0, 0)), constant_values=int(np.median(x[:, :8])))  # noqa: E731
    return np.ascontiguousarray(np.hstack([pad(a), pad(b)]))


@lru_cache(maxsize=1)
def hand_and_long_bone_pixels() -> np.ndarray:
    """A phantom hand next to a tibia-like shaft as large: a film of two regions whose second is no hand (uint8).

    The shaft's bones, as the default bundle's bone model finds them next to this phantom, make no hand in any turn,
    and the view classifier's "fingers" is not taken for a silhouette without digits: the second region fails with
    NotAHandError inside the per-hand pipeline.
    """
    from ramh_train.datasets.synthetic import phantom_seed
    from ramh_train.phantoms import generate

    img = generate(phantom_seed(9100, 0)).image
    h, w = img.shape
    bg = int(np.median(img[:, :8]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.abs(xx - w / 2 - 0.03 * (yy - h / 2))
    rng = np.random.default_rng(0)
    shaft = bg + 70 * (d < 0.3 * w) + 110 * (d < 0.12 * w) - 50 * (d < 0.07 * w) + rng.normal(0, 3, d.shape)
    return np.ascontiguousarray(np.concatenate([img, np.clip(shaft, 0, 255).astype(np.uint8)], axis=1))


def noise_pixels(seed: int = 0, shape: tuple[int, int] = (1024, 800)) -> np.ndarray:
    """Uniform noise: no hand in it."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
