"""Study metadata from the headers of the slices kept."""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from ml.io.dicom_header import Frame, frame_attr
from ml.io.geometry import slice_normal, spacing_stats, tilt_deg
from ml.io.text import clean_text, finite_or_none
from ml.io.types import StudyMetadata

_TEXT_FIELDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_age": "PatientAge",
    "patient_sex": "PatientSex",
    "study_description": "StudyDescription",
    "series_description": "SeriesDescription",
    "manufacturer": "Manufacturer",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
}
_NO_TILT_DEG = 0.05


def study_metadata(
    frames: list[Frame], *, positions: list[float | None]
) -> StudyMetadata:
    """Metadata of the ordered frames; ``positions`` along the normal in mm."""
    if not frames:
        return StudyMetadata(source_kind="dicom", units="intensity")
    ds = frames[0].ds
    modality = _text(ds, "Modality")
    spacing, uneven = _spacing(positions)
    # Any: mypy checks each ** value against every field, not the field it names.
    text: dict[str, Any] = {f: _text(ds, k) for f, k in _TEXT_FIELDS.items()}
    return StudyMetadata(
        source_kind="dicom",
        units="HU" if modality == "CT" else "intensity",
        modality=modality,
        **text,
        study_date=_date(ds.get("StudyDate")),
        study_time=_time(ds.get("StudyTime")),
        acquired_at=acquisition_time(ds),
        series_number=_integer(ds.get("SeriesNumber")),
        slice_thickness_mm=finite_or_none(_measure(ds, "SliceThickness")),
        pixel_spacing_mm=_pair(_measure(ds, "PixelSpacing")),
        slice_spacing_mm=spacing,
        uneven_spacing=uneven,
        gantry_tilt_deg=gantry_tilt(frames),
        window_center=_first(frame_attr(ds, 0, "FrameVOILUT", "WindowCenter")),
        window_width=_first(frame_attr(ds, 0, "FrameVOILUT", "WindowWidth")),
        image_orientation=_orientation(frames[0]),
    )


def _orientation(frame: Frame) -> tuple[float, ...] | None:
    if frame.orientation is None:
        return None
    return tuple(round(float(v), 6) for v in frame.orientation)


#: Where the time the images were made is read, most precise first.
_WHEN = ("Acquisition", "Series", "Study")


def acquisition_time(ds: Dataset) -> datetime.datetime | None:
    """When the images were made: the first of AcquisitionDateTime,
    AcquisitionDate+AcquisitionTime, SeriesDate+SeriesTime and StudyDate+StudyTime
    that parses (a date without a time does not count). Naive (the scanner's local
    clock) unless AcquisitionDateTime carries a UTC offset."""
    moment = _datetime(ds.get("AcquisitionDateTime"))
    if moment is not None:
        return moment
    for prefix in _WHEN:
        day, clock = _date(ds.get(f"{prefix}Date")), _time(ds.get(f"{prefix}Time"))
        if day is not None and clock is not None:
            return datetime.datetime.combine(day, clock)
    return None


def _datetime(value: Any) -> datetime.datetime | None:
    try:
        parsed = DT(value) if value else None
    except (ValueError, TypeError):
        return None
    if not parsed:
        return None
    return datetime.datetime(
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
        tzinfo=parsed.tzinfo,
    )


def gantry_tilt(frames: list[Frame]) -> float | None:
    """Tilt in degrees: GantryDetectorTilt when non-zero, else from the geometry.

    The geometric tilt is the angle between the slice normal and the step between
    the first and last ImagePositionPatient; None when neither is known.
    """
    header = finite_or_none(frames[0].ds.get("GantryDetectorTilt"))
    if header:
        return header
    geometric = _geometric_tilt(frames)
    if geometric is not None and geometric > _NO_TILT_DEG:
        return round(geometric, 2)
    return None if header is None and geometric is None else 0.0


def _geometric_tilt(frames: list[Frame]) -> float | None:
    points = [f.position for f in frames if f.position is not None]
    orientation = frames[0].orientation
    if len(points) < 2 or orientation is None:
        return None
    return tilt_deg(
        points=np.array(points), normal=slice_normal(orientation=orientation)
    )


def _spacing(positions: list[float | None]) -> tuple[float | None, bool]:
    if any(p is None for p in positions):
        return None, False
    return spacing_stats(positions=np.array(positions, dtype=np.float64))


def _measure(ds: Dataset, keyword: str) -> Any:
    return frame_attr(ds, 0, "PixelMeasures", keyword)


def _text(ds: Dataset, keyword: str) -> str | None:
    return clean_text(ds.get(keyword)) or None


def _integer(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None


def _first(value: Any) -> float | None:
    if value is not None and not isinstance(value, str | bytes | float | int):
        value = next(iter(value), None)
    return finite_or_none(value)


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        row, column = (finite_or_none(v) for v in value)
    except (TypeError, ValueError):
        return None
    return None if row is None or column is None else (row, column)


def _date(value: Any) -> datetime.date | None:
    try:
        parsed = DA(value) if value else None
    except ValueError:
        return None
    return datetime.date(parsed.year, parsed.month, parsed.day) if parsed else None


def _time(value: Any) -> datetime.time | None:
    try:
        parsed = TM(value) if value else None
    except ValueError:
        return None
    if not parsed:
        return None
    return datetime.time(parsed.hour, parsed.minute, parsed.second, parsed.microsecond)
