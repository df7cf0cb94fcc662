"""NIfTI-1/2 volumes (nibabel), plain or gzip-compressed, as radiological axial slices.

Convention: the volume is reoriented to the closest canonical RAS+ orientation, then
``volume[k]`` is axial slice k from inferior to superior, its rows run anterior to
posterior and its columns from the patient's right to left: the way a radiologist
views an axial image, and the way a standard axial DICOM stores it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from ml.io.limits import LimitExceeded, LoadLimits, check_pixels, format_pixels
from ml.io.plan import Candidate, Expected, empty_result, rejected_only
from ml.io.resample import reduce_slice, reduced_size
from ml.io.sources import Source
from ml.io.text import clean_text, finite_or_none
from ml.io.types import (
    UNKNOWN_UNITS,
    LoadResult,
    Rejected,
    SliceInfo,
    StudyMetadata,
)

_LABEL = "NIfTI"
_CT_MIN_AT_MOST = -500.0  # air in HU is about -1000
_CT_MAX_AT_LEAST = 300.0  # bone in HU is several hundred


class _Unusable(ValueError):
    """The file is NIfTI but cannot give a volume; the message says why."""


@dataclass(frozen=True)
class _Header:
    source: Source
    header: nib.Nifti1Header
    shape: tuple[int, ...]  # as stored

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """(D, H, W) after reorientation."""
        ornt = io_orientation(self.header.get_best_affine())
        sizes = [0, 0, 0]
        for axis, (target, _) in enumerate(ornt):
            sizes[int(target)] = self.shape[axis] if axis < len(self.shape) else 1
        return sizes[2], sizes[1], sizes[0]


def plan_nifti(sources: list[Source], *, limits: LoadLimits) -> Candidate:
    """Plan the study from NIfTI files, reading headers only.

    One file is one volume: with several, the one with most axial slices is kept.
    """
    headers, rejected = [], []
    for source in sources:
        try:
            headers.append(_checked_header(source, limits=limits))
        except Exception as exc:  # nibabel raises many types on damaged headers
            rejected.append(Rejected(source.name, _reason(exc)))
    if not headers:
        return rejected_only(kind="nifti", label=_LABEL, rejected=rejected)
    headers.sort(key=lambda h: -h.canonical_shape[0])
    chosen = headers[0]
    rejected += [Rejected(h.source.name, _ANOTHER_VOLUME) for h in headers[1:]]
    depth, height, width = chosen.canonical_shape
    stored = (height, width)
    size = reduced_size(stored, max_side=limits.max_side)
    return Candidate(
        kind="nifti",
        label=_LABEL,
        sources=[chosen.source],
        shape=(depth, *size),
        load=lambda: _load(chosen, size=size),
        expected=_expected(chosen),
        rejected=rejected,
        warnings=_warnings(chosen),
        stored_size=stored,
    )


def read_nifti(
    path: str | os.PathLike[str], *, gzipped: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First volume of a NIfTI file in radiological axial layout, and its affine.

    Returns (D, H, W) float32 (scaled by scl_slope/scl_inter) and the (4, 4) affine
    of the RAS+ array before the axial layout is applied. ``gzipped`` None means
    "tell from the content". No limits are checked here: load_study does that.
    """
    if gzipped is None:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
    with _open(path, gzipped=gzipped) as f:
        image = _image_class(f).from_file_map(
            nib.Nifti1Image.make_file_map({"image": f, "header": f}), mmap=False
        )
        first = (slice(None),) * 3 + (0,) * max(0, len(image.shape) - 3)
        data = np.asarray(image.dataobj[first[: len(image.shape)]], dtype=np.float32)
    data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    ornt = io_orientation(image.affine)
    affine = image.affine @ inv_ornt_aff(ornt, data.shape)
    canonical = apply_orientation(data, ornt)
    return np.ascontiguousarray(canonical[::-1, ::-1, :].transpose(2, 1, 0)), affine


def _checked_header(source: Source, *, limits: LoadLimits) -> _Header:
    with _open(source.path, gzipped=source.sniffed == "gzip") as f:
        header = _image_class(f).header_class.from_fileobj(f)
    shape = tuple(int(n) for n in header.get_data_shape())
    if len(shape) < 2 or min(shape) < 1:
        raise _Unusable(f"NIfTI image has unusable dimensions {shape}")
    found = _Header(source, header, shape)
    depth, height, width = found.canonical_shape
    check_pixels(rows=height, columns=width, limits=limits)
    if depth > limits.max_slices:
        raise LimitExceeded(
            f"has {depth} slices; at most {limits.max_slices} can be read"
        )
    # A NIfTI volume is decoded whole before its slices are reduced.
    if depth * height * width > limits.max_study_pixels:
        raise LimitExceeded(
            f"volume of {width}x{height}x{depth} is "
            f"{format_pixels(depth * height * width)}; at most "
            f"{format_pixels(limits.max_study_pixels)} can be read per study"
        )
    _check_numbers(header)
    _check_complete(found)
    return found


def _check_numbers(header: nib.Nifti1Header) -> None:
    """Header numbers nibabel would trip over only when the voxels are read (on
    the worker, for a gzip file): a non-finite data offset, or a scaling slope with
    a non-finite intercept. (A NaN or zero slope means "not scaled".)"""
    offset = float(header["vox_offset"])
    if not np.isfinite(offset) or offset < 0:
        raise _Unusable(f"NIfTI header has an unusable data offset ({offset})")
    slope, inter = (float(header[k]) for k in ("scl_slope", "scl_inter"))
    if np.isfinite(slope) and slope != 0 and not np.isfinite(inter):
        raise _Unusable(
            f"NIfTI header scaling is not a finite number (scl_inter {inter})"
        )


def _check_complete(found: _Header) -> None:
    if found.source.sniffed == "gzip":
        return  # the decompressed size is only known by reading it all
    needed = int(found.header.get_data_offset()) + int(
        np.prod(found.shape) * found.header.get_data_dtype().itemsize
    )
    if found.source.size < needed:
        raise _Unusable(
            f"truncated NIfTI file: {found.source.size} bytes where {needed} are needed"
        )


def _image_class(f: io.BufferedIOBase) -> type[nib.Nifti1Image]:
    head = f.read(4)
    f.seek(0)
    sizes = struct.unpack("<i", head)[0], struct.unpack(">i", head)[0]
    return nib.Nifti2Image if 540 in sizes else nib.Nifti1Image


@contextlib.contextmanager
def _open(
    path: str | os.PathLike[str], *, gzipped: bool
) -> Iterator[io.BufferedIOBase]:
    with open(path, "rb") as raw:
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped


def _load(found: _Header, *, size: tuple[int, int]) -> LoadResult:
    gzipped = found.source.sniffed == "gzip"
    try:
        volume, affine = read_nifti(found.source.path, gzipped=gzipped)
    except Exception as exc:  # as above, for damaged data
        return empty_result(
            kind="nifti", rejected=[Rejected(found.source.name, _reason(exc))]
        )
    if not np.isfinite(volume).all():
        return empty_result(
            kind="nifti", rejected=[Rejected(found.source.name, _NOT_FINITE)]
        )
    if volume.shape[1:] != size:
        volume = np.stack([reduce_slice(s, size=size) for s in volume])
    return LoadResult(
        volume=volume,
        slices=_slices(found, affine, depth=volume.shape[0]),
        metadata=_metadata(found, affine, units=_units(volume)),
        consumed=[found.source.name],
    )


def _expected(found: _Header) -> Expected:
    """What _load will return, from the header: the affine :func:`read_nifti` gives
    (the stored one, reoriented), and unknown units: only the voxels tell them."""
    stored = found.header.get_best_affine()
    shape = (*found.shape[:3], 1, 1)[:3]
    affine = stored @ inv_ornt_aff(io_orientation(stored), shape)
    return Expected(
        slices=_slices(found, affine, depth=found.canonical_shape[0]),
        metadata=_metadata(found, affine, units=UNKNOWN_UNITS),
    )


def _slices(found: _Header, affine: np.ndarray, *, depth: int) -> list[SliceInfo]:
    return [
        SliceInfo(source=found.source.name, position_mm=p)
        for p in _positions(affine, depth=depth)
    ]


def _positions(affine: np.ndarray, *, depth: int) -> list[float]:
    """Slice centres along the superior-pointing slice normal, mm."""
    normal = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    centres = affine[:3, :3] @ np.array([[0, 0, k] for k in range(depth)]).T
    return [float(v) for v in (centres.T + affine[:3, 3]) @ normal]


def _metadata(found: _Header, affine: np.ndarray, *, units: str) -> StudyMetadata:
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    description = clean_text(found.header["descrip"].item().decode("latin-1"))
    return StudyMetadata(
        source_kind="nifti",
        units=units,
        study_description=description or None,
        pixel_spacing_mm=_pair(zooms[1], zooms[0]),
        slice_spacing_mm=finite_or_none(zooms[2]),
    )


def _pair(row: object, column: object) -> tuple[float, float] | None:
    row, column = finite_or_none(row), finite_or_none(column)
    return None if row is None or column is None else (row, column)


def _units(volume: np.ndarray) -> str:
    if volume.size == 0:
        return "intensity"
    low, high = float(volume.min()), float(volume.max())
    return "HU" if low <= _CT_MIN_AT_MOST and high >= _CT_MAX_AT_LEAST else "intensity"


def _warnings(found: _Header) -> list[str]:
    if len(found.shape) <= 3 or int(np.prod(found.shape[3:])) == 1:
        return []
    return [
        f"{found.source.name} has shape {found.shape}; only the first volume was read"
    ]


def _reason(exc: Exception) -> str:
    if isinstance(exc, LimitExceeded | _Unusable):
        return str(exc)
    return f"corrupt NIfTI file ({type(exc).__name__}: {exc})"


_NOT_FINITE = (
    "voxel values are not finite numbers (NaN or infinite); "
    "save the volume without NaN masking"
)
_ANOTHER_VOLUME = "another NIfTI volume; upload one study (one volume) at a time"
