"""Writing a phantom as a CT Image Storage DICOM series, optionally compressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.synthetic.phantom import Phantom

#: Lossless transfer syntaxes the DICOM writer can compress with, by short name.
COMPRESSIONS: dict[str, str] = {
    "rle": "1.2.840.10008.1.2.5",  # RLE Lossless, pydicom natively
    "jpeg-ls": "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless, pyjpegls
    "jpeg2000": "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless, pylibjpeg-openjpeg
}
RESCALE_INTERCEPT = -1024.0


def _uid(seed: str | None, *parts: object) -> str:
    from pydicom.uid import generate_uid

    if seed is None:
        return str(generate_uid())
    return str(generate_uid(entropy_srcs=[seed, *map(str, parts)]))


def _stored_pixels(hu: np.ndarray, *, signed: bool) -> np.ndarray:
    """HU → stored values with intercept -1024, slope 1 (12-bit unsigned or int16)."""
    stored = np.rint(hu) - RESCALE_INTERCEPT
    if signed:
        return np.clip(stored, -32768, 32767).astype(np.int16)
    return np.clip(stored, 0, 4095).astype(np.uint16)


def series_uids(*, patient_id: str, uid_seed: str | None) -> dict[str, str]:
    """Study, series and frame-of-reference UIDs; reproducible given ``uid_seed``."""
    return {
        name: _uid(uid_seed, patient_id, name)
        for name in ("study", "series", "frame_of_reference")
    }


def _ct_dataset(
    phantom: Phantom, k: int, *, uids: dict[str, str], patient_id: str, signed: bool
) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = uids[f"instance {k}"]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _set_patient_study(ds, phantom, uids=uids, patient_id=patient_id)
    _set_geometry(ds, phantom, k)
    _set_pixels(ds, phantom.volume_hu[k], signed=signed)
    return ds


def _set_patient_study(
    ds: Any, phantom: Phantom, *, uids: dict[str, str], patient_id: str
) -> None:
    ds.PatientID, ds.PatientName = patient_id, f"PHANTOM^{patient_id}"
    ds.PatientSex, ds.PatientBirthDate = "O", ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240101", "120000", ""
    ds.StudyID, ds.SeriesNumber, ds.ReferringPhysicianName = "1", 1, ""
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "CT", "HEAD", "ml.synthetic"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SeriesDescription = "SYNTHETIC HEAD PHANTOM"
    ds.ImageComments = f"Synthetic phantom, not a patient (label={phantom.label})"


def _set_geometry(ds: Any, phantom: Phantom, k: int) -> None:
    dz, dy, dx = phantom.spacing
    rows, cols = phantom.volume_hu.shape[1:]
    z = round(k * dz, 3)
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [
        round(-dx * (cols - 1) / 2, 3),
        round(-dy * (rows - 1) / 2, 3),
        z,
    ]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation, ds.SliceThickness = z, dz
    ds.PixelSpacing = [round(dy, 6), round(dx, 6)]


def _set_pixels(ds: Any, hu: np.ndarray, *, signed: bool) -> None:
    stored = _stored_pixels(hu, signed=signed)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = 16, 16 if signed else 12
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(signed)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = RESCALE_INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.PixelData = stored.tobytes()


def write_dicom_series(
    phantom: Phantom,
    out_dir: str | Path,
    *,
    transfer_syntax: str | None = None,
    patient_id: str = "PHANTOM0001",
    signed: bool = False,
    uid_seed: str | None = None,
) -> list[Path]:
    """Write the phantom as a CT Image Storage series, one file per slice.

    ``transfer_syntax``: None (explicit VR little endian), a key of ``COMPRESSIONS``
    or a lossless UID. Pixels are uint16 (12 bits stored) or, with ``signed``,
    int16; RescaleIntercept -1024, slope 1, window 40/80. ``uid_seed`` makes UIDs
    reproducible. Returns the paths ``IM0001.dcm``… in slice order.
    """
    syntax = resolve_syntax(transfer_syntax)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uids = series_uids(patient_id=patient_id, uid_seed=uid_seed)
    paths = []
    for k in range(len(phantom.volume_hu)):
        uids[f"instance {k}"] = _uid(uid_seed, patient_id, "instance", k)
        ds = _ct_dataset(phantom, k, uids=uids, patient_id=patient_id, signed=signed)
        if syntax:
            ds.compress(syntax, generate_instance_uid=False)
        paths.append(out / f"IM{k + 1:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def resolve_syntax(transfer_syntax: str | None) -> str | None:
    """A ``COMPRESSIONS`` name or UID → its UID; None for uncompressed."""
    if transfer_syntax in (None, "", "none"):
        return None
    if transfer_syntax in COMPRESSIONS:
        return COMPRESSIONS[transfer_syntax]
    if transfer_syntax in COMPRESSIONS.values():
        return transfer_syntax
    raise ValueError(
        f"unsupported transfer syntax {transfer_syntax!r}; use one of "
        f"{sorted(COMPRESSIONS)} or their UIDs"
    )
