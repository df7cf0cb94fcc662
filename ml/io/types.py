"""Result types of :func:`ml.io.load_study`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from ml.io.text import clean_name, clean_text

#: How many rejected files a :class:`StudyLoadError` message names before "and N more".
_NAMED_IN_MESSAGE = 5
#: ``StudyMetadata.units`` when only decoding the voxels can tell (a NIfTI checked
#: from its header by :func:`ml.io.check_upload`).
UNKNOWN_UNITS = "unknown"


@dataclass(frozen=True)
class Rejected:
    """A file (or one frame of it) that was set aside, and why."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        # Reasons quote header text (series descriptions, UIDs) and decoder messages;
        # names may come from a zip (clean_name changes nothing it cleaned before).
        object.__setattr__(self, "reason", clean_text(self.reason))
        object.__setattr__(self, "name", clean_name(self.name))


@dataclass(frozen=True)
class SliceInfo:
    """Where one slice of the volume came from."""

    source: str
    frame: int = 0
    position_mm: float | None = None
    instance_number: int | None = None
    sop_instance_uid: str | None = None


@dataclass
class StudyMetadata:
    """What is known about the study; every field may be ``None`` when unknown."""

    source_kind: str
    units: str
    modality: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    study_date: datetime.date | None = None
    study_time: datetime.time | None = None
    #: When the images were made (AcquisitionDateTime, else Acquisition, Series or
    #: Study Date+Time): naive, the scanner's clock, unless it gave a UTC offset.
    acquired_at: datetime.datetime | None = None
    study_description: str | None = None
    series_description: str | None = None
    manufacturer: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    series_number: int | None = None
    slice_thickness_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_spacing_mm: float | None = None
    uneven_spacing: bool = False
    gantry_tilt_deg: float | None = None
    window_center: float | None = None
    window_width: float | None = None
    #: ImageOrientationPatient of the first slice: the row then the column direction
    #: cosines (6 floats, DICOM patient frame LPS); None when unknown.
    image_orientation: tuple[float, ...] | None = None
    #: (H, W) of the slices as stored, when they were read reduced (see
    #: ``LoadLimits.max_side``); ``pixel_spacing_mm`` is that of the reduced slices.
    stored_size: tuple[int, int] | None = None
    #: How many times smaller each side was read; None when not reduced.
    reduction: float | None = None


@dataclass
class SeriesInfo:
    """Another axial series of the study, beside the one read: told from its
    headers, not decoded. ``label`` is how a reader names it ('3 "BONE"');
    ``shape`` the (D, H, W) of its volume as it would be read; ``consumed`` the
    files that hold its slices. Read it with ``load_study(..., series_uid=uid)``.
    """

    uid: str
    label: str
    shape: tuple[int, int, int]
    slices: list[SliceInfo]
    metadata: StudyMetadata
    consumed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    """One study read from an upload.

    ``volume`` is (D, H, W) float32 with slices ordered inferior to superior; its
    values are Hounsfield units when ``metadata.units == "HU"``. ``slices[i]``
    describes ``volume[i]``. ``consumed`` names the files that gave slices;
    ``rejected`` every file set aside; ``warnings`` what was read but is worth a look.
    ``series`` lists the study's other axial series (DICOM), kept but not read.
    """

    volume: np.ndarray
    slices: list[SliceInfo]
    metadata: StudyMetadata
    rejected: list[Rejected] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    series: list[SeriesInfo] = field(default_factory=list)


class StudyLoadError(ValueError):
    """Nothing usable was left in the upload (or the study breaks a limit)."""

    def __init__(self, summary: str, *, rejected: list[Rejected] | None = None):
        self.summary = summary
        self.rejected = list(rejected or [])
        super().__init__(_error_message(summary, self.rejected))


def _error_message(summary: str, rejected: list[Rejected]) -> str:
    named = "; ".join(f"{r.name}: {r.reason}" for r in rejected[:_NAMED_IN_MESSAGE])
    more = len(rejected) - _NAMED_IN_MESSAGE
    tail = f"; and {more} more file(s) set aside" if more > 0 else ""
    return f"{summary} ({named}{tail})" if named else summary
