"""What each reader proposes before any pixel is decoded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ml.io.limits import LoadLimits, format_bytes, format_pixels
from ml.io.sources import Source
from ml.io.types import (
    UNKNOWN_UNITS,
    LoadResult,
    Rejected,
    SliceInfo,
    StudyLoadError,
    StudyMetadata,
)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass
class Expected:
    """What ``load()`` will return when every slice decodes, told from headers.

    ``warnings`` are those load() itself adds (e.g. uneven spacing), beside the
    candidate's own. ``metadata.units`` is :data:`UNKNOWN_UNITS` where only the
    voxel values tell (NIfTI).
    """

    slices: list[SliceInfo]
    metadata: StudyMetadata
    warnings: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    """A study one reader can build from part of the upload, decoded only on load.

    ``spot_check`` decodes the few slices worth decoding before the upload is
    accepted (a sample, and files whose headers hint at damage) and returns those
    that failed; it never builds the volume. ``shape`` is the volume as it will be
    read; ``stored_size`` the (H, W) of the slices as stored when ``load`` reduces
    them (longest side above ``LoadLimits.max_side``). A DICOM candidate is one
    series, named by ``series_label``; ``series`` holds the study's other axial
    series, each planned as a candidate of its own (the loader decides which it
    keeps), and none of their files is in ``rejected``.
    """

    kind: str  # "dicom" | "image" | "nifti"
    label: str  # how a user names the kind: "DICOM", "PNG/JPEG/BMP/TIFF", "NIfTI"
    sources: list[Source]  # files that will give slices
    shape: tuple[int, int, int]  # (D, H, W) of the volume to come
    load: Callable[[], LoadResult]
    expected: Expected
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    spot_check: Callable[[], list[Rejected]] = lambda: []
    stored_size: tuple[int, int] | None = None
    series_label: str = ""
    series: list[Candidate] = field(default_factory=list)

    @property
    def slice_count(self) -> int:
        return self.shape[0]


def rejected_only(*, kind: str, label: str, rejected: list[Rejected]) -> Candidate:
    """A candidate without slices, carrying why each of its files was set aside."""

    def load() -> LoadResult:
        raise StudyLoadError(f"no readable {label} slices", rejected=rejected)

    nothing = Expected(slices=[], metadata=StudyMetadata(kind, UNKNOWN_UNITS))
    return Candidate(kind, label, [], (0, 0, 0), load, nothing, rejected=rejected)


def empty_result(*, kind: str, rejected: list[Rejected]) -> LoadResult:
    """What a reader returns when no slice could be decoded after all."""
    return LoadResult(
        volume=np.zeros((0, 0, 0), np.float32),
        slices=[],
        metadata=StudyMetadata(source_kind=kind, units="intensity"),
        rejected=rejected,
    )


def check_volume(*, shape: tuple[int, int, int], limits: LoadLimits) -> None:
    """Raise StudyLoadError when a (D, H, W) float32 volume, as read (slices
    reduced to ``limits.max_side``), breaks the limits."""
    depth, height, width = shape
    if depth > limits.max_slices:
        raise StudyLoadError(
            f"the study has {depth} slices; at most {limits.max_slices} can be read"
        )
    pixels = depth * height * width
    if pixels > limits.max_study_pixels:
        raise StudyLoadError(
            f"the study's {depth} slices of {width}x{height} pixels are "
            f"{format_pixels(pixels)}; at most {format_pixels(limits.max_study_pixels)}"
            " can be read per study"
        )
    size = depth * height * width * 4
    if size > limits.max_total_bytes:
        raise StudyLoadError(
            f"the study's {depth}x{height}x{width} volume needs {format_bytes(size)}; "
            f"the limit is {format_bytes(limits.max_total_bytes)}"
        )


def split_majority(
    items: Sequence[T], *, key: Callable[[T], K]
) -> tuple[K, list[T], list[T]]:
    """The most common key (first seen wins ties), items having it, items not."""
    common = Counter(key(item) for item in items).most_common(1)[0][0]
    kept = [item for item in items if key(item) == common]
    return common, kept, [item for item in items if key(item) != common]
