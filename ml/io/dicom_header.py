"""DICOM headers: read without pixels, decide what is not a slice, list frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.utils import get_expected_length
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ml.io.geometry import slice_normal
from ml.io.limits import LoadLimits, check_pixels, format_bytes
from ml.io.sources import Source
from ml.io.text import finite_or_none

_DEFER_BYTES = 4096  # large values (pixel data) are read only when decoded
_DICOMDIR = "1.2.840.10008.1.3.10"
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_STRUCTURED_REPORT = "1.2.840.10008.5.1.4.1.1.88."
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # float, double, integer pixels
#: Modalities whose objects hold derived data (dose grids, masks, plans), not images.
_NOT_PATIENT_IMAGES = {
    "SEG",
    "RTDOSE",
    "RTSTRUCT",
    "RTPLAN",
    "RTRECORD",
    "REG",
    "KO",
    "PR",
}
_IDENTIFYING = ("SOPClassUID", "Modality", "StudyInstanceUID", "PixelData", "Rows")


@dataclass(frozen=True, eq=False)
class Frame:
    """One 2-D image of a DICOM file; geometry in LPS millimetres."""

    source: Source
    ds: Dataset
    index: int  # 0-based frame number inside the file
    position: np.ndarray | None  # (3,) ImagePositionPatient
    orientation: np.ndarray | None  # (6,) ImageOrientationPatient

    @property
    def label(self) -> str:
        """The file name, plus the frame for multi-frame files."""
        if frame_count(self.ds) == 1:
            return self.source.name
        return f"{self.source.name} (frame {self.index + 1})"

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.ds.Rows), int(self.ds.Columns)

    @property
    def instance_number(self) -> int | None:
        return _int_or_none(self.ds.get("InstanceNumber"))


def read_header(source: Source) -> Dataset:
    """The data set of ``source`` with pixel data deferred; ValueError if not DICOM."""
    try:
        ds = _read(source, defer=True)
        if _syntax(ds) == DeflatedExplicitVRLittleEndian:
            # Deferred offsets would count inflated bytes: read it all at once.
            ds = _read(source, defer=False)
        _parse_all(ds)
        _parse_all(getattr(ds, "file_meta", None) or Dataset())
    except Exception as exc:  # pydicom raises many types on damaged input
        raise ValueError(f"unreadable DICOM ({type(exc).__name__}: {exc})") from exc
    if not any(keyword in ds for keyword in _IDENTIFYING) and not _is_dicomdir(ds):
        raise ValueError("not a DICOM file (no DICOM image attributes found)")
    _add_syntax(ds)
    return ds


def _parse_all(ds: Dataset) -> None:
    """Convert every element but pixel data now: pydicom parses lazily, and damage
    must show here, where it becomes a reason, not in a later attribute read."""
    for tag in list(ds.keys()):
        if tag in _PIXEL_TAGS:
            continue
        element = ds[tag]
        if element.VR == "SQ":
            for item in element.value:
                _parse_all(item)


def _read(source: Source, *, defer: bool) -> Dataset:
    return pydicom.dcmread(
        source.path,
        defer_size=_DEFER_BYTES if defer else None,
        force=source.sniffed == "dicom-raw",
    )


def _add_syntax(ds: Dataset) -> None:
    """Files without a meta header only say how they were read; decoders need a UID."""
    if _syntax(ds) is not None:
        return
    implicit, little = ds.original_encoding
    syntax = {
        (True, True): ImplicitVRLittleEndian,
        (False, False): ExplicitVRBigEndian,
    }.get((bool(implicit), bool(little)), ExplicitVRLittleEndian)
    ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax


def _syntax(ds: Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    return None if meta is None else meta.get("TransferSyntaxUID")


def set_aside_reason(ds: Dataset, *, source: Source, limits: LoadLimits) -> str:
    """Why a data set gives no slice of the study, or "" when it may."""
    sop = str(
        ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "")
    )
    reasons = (
        lambda: _kind_reason(ds, sop=sop),
        lambda: _image_reason(ds, limits=limits),
        lambda: _rescale_reason(ds),
        lambda: _truncation_reason(ds, source=source),
    )
    for reason in reasons:  # in order: later checks trust the sizes earlier ones passed
        if found := reason():
            return found
    return ""


def frames_of(ds: Dataset, *, source: Source) -> list[Frame]:
    """Every frame of ``ds`` with its own position and orientation.

    Frames of a legacy multi-frame file (no per-frame functional groups) share one
    ImagePositionPatient, which places only the first: they get no position.
    """
    positioned = frame_count(ds) == 1 or "PerFrameFunctionalGroupsSequence" in ds
    return [
        Frame(
            source=source,
            ds=ds,
            index=index,
            position=_vector(_position(ds, index), 3) if positioned else None,
            orientation=_usable_orientation(_vector(_orientation(ds, index), 6)),
        )
        for index in range(frame_count(ds))
    ]


def _position(ds: Dataset, index: int) -> Any:
    return frame_attr(ds, index, "PlanePosition", "ImagePositionPatient")


def _orientation(ds: Dataset, index: int) -> Any:
    return frame_attr(ds, index, "PlaneOrientation", "ImageOrientationPatient")


def frame_count(ds: Dataset) -> int:
    """NumberOfFrames, 1 when absent or invalid."""
    return max(1, _int_or_none(ds.get("NumberOfFrames")) or 1)


def frame_attr(ds: Dataset, index: int, group: str, keyword: str) -> Any:
    """An attribute of frame ``index`` from the enhanced functional groups
    (``group`` + "Sequence", per-frame before shared), else from the data set."""
    item = functional_group(ds, index=index, sequence=f"{group}Sequence")
    if item is not None and keyword in item:
        return item.get(keyword)
    return ds.get(keyword)


def functional_group(ds: Dataset, *, index: int, sequence: str) -> Dataset | None:
    """First item of functional group ``sequence`` for frame ``index``, or None."""
    per_frame = _items(ds.get("PerFrameFunctionalGroupsSequence"))
    shared = _items(ds.get("SharedFunctionalGroupsSequence"))
    groups = ([per_frame[index]] if index < len(per_frame) else []) + list(shared[:1])
    for group in groups:
        items = _items(group.get(sequence))
        if items:
            return items[0]
    return None


def _items(value: object) -> list[Dataset]:
    """Items of a sequence value; nothing when damage left something else."""
    return list(value) if isinstance(value, Sequence) else []


def image_types(ds: Dataset) -> set[str]:
    """Upper-case values of ImageType and of the enhanced frame types."""
    values = list(ds.get("ImageType") or [])
    for sequence in ("CTImageFrameTypeSequence", "MRImageFrameTypeSequence"):
        item = functional_group(ds, index=0, sequence=sequence)
        values += list(item.get("FrameType") or []) if item is not None else []
    return {str(v).upper() for v in values}


def _kind_reason(ds: Dataset, *, sop: str) -> str:
    if _is_dicomdir(ds):
        return "DICOMDIR (an index of other files), not an image"
    if sop.startswith(_STRUCTURED_REPORT):
        return f"structured report ({UID(sop).name}), not an image"
    modality = str(ds.get("Modality", "")).upper()
    if modality in _NOT_PATIENT_IMAGES:
        return f"{UID(sop).name or modality} ({modality}), not an image of the patient"
    if "PixelData" not in ds:
        return (
            f"DICOM object without pixel data ({UID(sop).name or 'unknown SOP class'})"
        )
    if sop == _SECONDARY_CAPTURE or sop.startswith(_SECONDARY_CAPTURE + "."):
        return "secondary capture (a screenshot or scanned page), not an original slice"
    if "LOCALIZER" in image_types(ds):
        return "localizer (scout) image, not an axial slice"
    return ""


def _image_reason(ds: Dataset, *, limits: LoadLimits) -> str:
    rows, columns = _int_or_none(ds.get("Rows")), _int_or_none(ds.get("Columns"))
    if not rows or not columns:
        return "pixel data without valid Rows and Columns"
    try:
        check_pixels(rows=rows, columns=columns, limits=limits)
    except ValueError as exc:
        return str(exc)
    frames = frame_count(ds)
    if frames > limits.max_slices:
        return f"has {frames} frames; at most {limits.max_slices} can be read"
    samples = _int_or_none(ds.get("SamplesPerPixel")) or 1
    if samples != 1:
        return f"colour image ({samples} samples per pixel); CT and MR are grayscale"
    return _declared_size_reason(ds, rows * columns * frames, limits=limits)


def _declared_size_reason(ds: Dataset, pixels: int, *, limits: LoadLimits) -> str:
    """Refuse, from the header alone, pixel data larger than a file may be or whose
    float32 volume would pass the upload's limit: nothing is allocated for it."""
    stored_bytes = pixels * max(
        1, -(-(_int_or_none(ds.get("BitsAllocated")) or 16) // 8)
    )
    decoded_bytes = pixels * 4  # float32 after the modality LUT
    if stored_bytes > limits.max_file_bytes or decoded_bytes > limits.max_total_bytes:
        return (
            f"header declares {frame_count(ds)} frame(s) of {ds.Columns}x{ds.Rows} "
            f"pixels ({format_bytes(decoded_bytes)} decoded); at most "
            f"{format_bytes(limits.max_file_bytes)} per file and "
            f"{format_bytes(limits.max_total_bytes)} per upload can be read"
        )
    return ""


_RESCALE_TAGS = ("RescaleSlope", "RescaleIntercept")


def _rescale_reason(ds: Dataset) -> str:
    """A non-finite slope or intercept makes every pixel NaN or infinite."""
    groups = [ds] + [
        item
        for sequence in (
            "SharedFunctionalGroupsSequence",
            "PerFrameFunctionalGroupsSequence",
        )
        for group in _items(ds.get(sequence))
        for item in _items(group.get("PixelValueTransformationSequence"))
    ]
    for item in groups:
        for keyword in _RESCALE_TAGS:
            value = item.get(keyword)
            if value not in (None, "") and finite_or_none(value) is None:
                return f"{keyword} is not a finite number"
    return ""


def _truncation_reason(ds: Dataset, *, source: Source) -> str:
    """Catch cut-off native pixel data from the header, before decoding."""
    element = ds.get_item("PixelData", keep_deferred=True)
    length, start = (
        getattr(element, "length", None),
        getattr(element, "value_tell", None),
    )
    if length in (None, _UNDEFINED_LENGTH) or start is None:
        return ""  # encapsulated or already read: the decoder reports damage
    if _syntax(ds) == DeflatedExplicitVRLittleEndian:
        return ""  # offsets count inflated bytes, not file bytes
    if start + length > source.size:
        return "truncated file: it ends before its pixel data does"
    expected = _expected_length(ds)
    if expected and length < expected:
        return f"pixel data holds {length} bytes where {expected} are needed"
    return ""


def _expected_length(ds: Dataset) -> int | None:
    syntax = _syntax(ds)
    if syntax is not None and UID(syntax).is_compressed:
        return None
    try:
        return get_expected_length(ds)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None) or {}
    return (
        meta.get("MediaStorageSOPClassUID") == _DICOMDIR
        or "DirectoryRecordSequence" in ds
    )


def _usable_orientation(orientation: np.ndarray | None) -> np.ndarray | None:
    """None for a missing or degenerate ImageOrientationPatient (no plane normal)."""
    if orientation is None:
        return None
    try:
        slice_normal(orientation=orientation)
    except ValueError:
        return None
    return orientation


def _vector(value: Any, size: int) -> np.ndarray | None:
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return vector if vector.shape == (size,) and np.all(np.isfinite(vector)) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
