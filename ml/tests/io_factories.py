"""Tiny synthetic inputs for the ml.io tests: DICOM, images, NIfTI and zips.

Pixel values encode where a slice belongs: a CT slice built with ``hu=h`` stores
``h + 1024`` with RescaleIntercept -1024, so the loaded volume reads ``h`` HU.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"


def ct_slice(
    *,
    hu: float = 0.0,
    z: float | None = 0.0,
    size: tuple[int, int] = (16, 16),
    orientation: tuple[float, ...] | None = AXIAL,
    instance: int | None = 1,
    study: str = STUDY,
    series: str = SERIES,
    series_number: int = 2,
    modality: str = "CT",
    sop_class: str = CTImageStorage,
) -> Dataset:
    """One uncompressed 16-bit slice reading ``hu`` everywhere after rescale."""
    ds = _base(sop_class=sop_class, study=study, series=series, modality=modality)
    ds.SeriesNumber = series_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if instance is not None:
        ds.InstanceNumber = instance
    if z is not None:
        ds.ImagePositionPatient = [-8.0, -8.0, z]
    if orientation is not None:
        ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 5.0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    _set_pixels(ds, np.full(size, hu + 1024, dtype=np.uint16))
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM file (with preamble) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ct_series(folder: Path, *, zs: list[float], names: list[str] | None = None, **kw):
    """Write one slice per z; slice at ``zs[i]`` reads ``100 * i`` HU."""
    names = names or [f"IM{i:04d}.dcm" for i in range(len(zs))]
    return [
        write(ct_slice(hu=100.0 * i, z=z, instance=i + 1, **kw), folder / name)
        for i, (z, name) in enumerate(zip(zs, names, strict=True))
    ]


def enhanced_ct(*, zs: list[float], slopes: list[float] | None = None) -> Dataset:
    """Multi-frame enhanced CT; frame i at ``zs[i]`` reads ``100 * i`` HU."""
    ds = _base(sop_class=EnhancedCTImageStorage, study=STUDY, series=SERIES)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = len(zs)
    slopes = slopes or [1.0] * len(zs)
    ds.SharedFunctionalGroupsSequence = Sequence([_shared_groups()])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_frame_groups(z=z, slope=s) for z, s in zip(zs, slopes, strict=True)]
    )
    stored = [(100.0 * i + 1024) / s for i, s in enumerate(slopes)]
    _set_pixels(ds, np.stack([np.full((16, 16), v, np.uint16) for v in stored]))
    return ds


def no_pixel_object(*, sop_class: str) -> Dataset:
    """A DICOM object with no image (structured report, presentation state...)."""
    ds = _base(sop_class=sop_class, study=STUDY, series=generate_uid(), modality="SR")
    ds.ContentDate = "20240102"
    return ds


def dicomdir() -> Dataset:
    """A minimal DICOMDIR: a directory index, no image."""
    ds = Dataset()
    ds.file_meta = _meta(sop_class="1.2.840.10008.1.3.10")
    ds.FileSetID = "TEST"
    ds.DirectoryRecordSequence = Sequence([])
    return ds


def save_image(path: Path, image: Image.Image | np.ndarray, **kw) -> Path:
    """Save with Pillow (format from the suffix) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, **kw)
    return path


def png_header_only(*, width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def save_nifti(path: Path, data: np.ndarray, *, affine: np.ndarray) -> Path:
    """Save a NIfTI-1 image (``.nii`` or ``.nii.gz`` from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def zip_bytes(members: dict[str, bytes], *, deflate: bool = True) -> bytes:
    """A zip holding ``members`` (name -> content)."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, content in members.items():
            zf.writestr(zipfile.ZipInfo(name), content, compress_type=method)
    return buffer.getvalue()


def mark_encrypted(raw: bytes, *, member: str) -> bytes:
    """Set the "encrypted" flag of ``member`` in a zip (zipfile cannot write one)."""
    out, name = bytearray(raw), member.encode()
    for signature, flags_at, name_at in (
        (b"PK\x03\x04", 6, 30),
        (b"PK\x01\x02", 8, 46),
    ):
        start = out.find(signature)
        while start != -1:
            if out[start + name_at : start + name_at + len(name)] == name:
                out[start + flags_at] |= 0x1
            start = out.find(signature, start + 4)
    return bytes(out)


def dicom_bytes(ds: Dataset) -> bytes:
    """``ds`` as the bytes of a DICOM file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _base(*, sop_class: str, study: str, series: str, modality: str = "CT") -> Dataset:
    ds = Dataset()
    ds.file_meta = _meta(sop_class=sop_class)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality = modality
    ds.PatientID, ds.PatientName, ds.PatientSex = "P001", "Test^Patient", "F"
    ds.StudyDate, ds.StudyTime = "20240102", "101530"
    return ds


def _meta(*, sop_class: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _set_pixels(ds: Dataset, array: np.ndarray) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = array.shape[-2:]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = array.astype(np.uint16).tobytes()


def _shared_groups() -> Dataset:
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = list(AXIAL)
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.5], 2.0
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    return shared


def _frame_groups(*, z: float, slope: float) -> Dataset:
    position, transform = Dataset(), Dataset()
    position.ImagePositionPatient = [-8.0, -8.0, z]
    transform.RescaleIntercept, transform.RescaleSlope = -1024, slope
    transform.RescaleType = "HU"
    groups = Dataset()
    groups.PlanePositionSequence = Sequence([position])
    groups.PixelValueTransformationSequence = Sequence([transform])
    return groups


def _chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
