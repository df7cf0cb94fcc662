"""The one entry point: an upload in, one study (or a clear refusal) out."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ml.io.dicom import plan_dicom
from ml.io.limits import LoadLimits
from ml.io.nifti import plan_nifti
from ml.io.plan import Candidate, check_volume
from ml.io.raster import plan_images
from ml.io.resample import reduction_factor, reduction_warning, scaled_spacing
from ml.io.sources import Source, collect_sources
from ml.io.types import (
    LoadResult,
    Rejected,
    SliceInfo,
    StudyLoadError,
    StudyMetadata,
)

PathLike = str | os.PathLike[str]
DEFAULT_LIMITS = LoadLimits()
_PLANNERS = {"dicom": plan_dicom, "nifti": plan_nifti, "image": plan_images}


@dataclasses.dataclass
class UploadCheck:
    """What :func:`load_study` would return for an upload, without the volume.

    Fields are those of :class:`LoadResult`, and ``shape`` the (D, H, W) of its
    volume, except that ``metadata.units`` is ``ml.io.UNKNOWN_UNITS`` for NIfTI (only
    the voxels tell). ``fully_decoded`` is True when a spot check failed and the
    whole upload was decoded to tell which files to set aside.
    """

    kind: str  # "dicom" | "image" | "nifti"
    shape: tuple[int, int, int]
    slices: list[SliceInfo]
    metadata: StudyMetadata
    consumed: list[str]
    rejected: list[Rejected]
    warnings: list[str]
    fully_decoded: bool = False


def load_study(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits = DEFAULT_LIMITS,
    names: Mapping[str, str] | None = None,
) -> LoadResult:
    """Read one study from files, folders and zips, typed by content.

    Returns the slices of one study as a (D, H, W) float32 volume ordered inferior
    to superior (Hounsfield units for CT DICOM, see ``metadata.units``), with every
    file set aside and why. ``names`` maps an input path (as given) to the name the
    user knows it by. Raises StudyLoadError when nothing usable is left or the study
    breaks ``limits``.
    """
    with tempfile.TemporaryDirectory(prefix="ml-io-") as workdir:
        chosen, rejected = _choose(paths, limits=limits, workdir=workdir, names=names)
        return _load(chosen, rejected)


def check_upload(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits = DEFAULT_LIMITS,
    names: Mapping[str, str] | None = None,
) -> UploadCheck:
    """Validate an upload as :func:`load_study` would, from headers and a spot check.

    Fast enough for a web request: files are typed, limits checked, headers parsed
    and one study chosen as load_study does, but only a few slices are decoded (one
    of each DICOM transfer syntax, the first image, and JPEG/PNG files that look cut
    off) and no volume is built. When one of those fails, an upload of at most
    ``limits.max_check_pixels`` stored pixels is read as load_study reads it, so
    that what is set aside, or the refusal, is load_study's; a larger one sets aside
    the files that failed and spot-checks the rest again (a few rounds), so that no
    web request decodes a whole hostile study. Damage elsewhere in compressed pixel
    data shows only in load_study. Arguments as for load_study; raises
    StudyLoadError.
    """
    with tempfile.TemporaryDirectory(prefix="ml-io-") as workdir:
        chosen, rejected = _choose(paths, limits=limits, workdir=workdir, names=names)
        failed = chosen.spot_check()
        if failed and _stored_pixels(chosen) <= limits.max_check_pixels:
            return _as_check(_load(chosen, rejected), kind=chosen.kind)
        chosen, rejected = _without_failed(chosen, rejected, failed, limits=limits)
    expected = chosen.expected
    return UploadCheck(
        kind=chosen.kind,
        shape=chosen.shape,
        slices=expected.slices,
        metadata=_as_read(expected.metadata, chosen),
        consumed=[s.name for s in chosen.sources],
        rejected=rejected,
        warnings=_reduction_warnings(chosen) + chosen.warnings + expected.warnings,
    )


#: Spot-check rounds of a large upload whose sampled slices fail.
_SPOT_ROUNDS = 3


def _stored_pixels(chosen: Candidate) -> int:
    height, width = chosen.stored_size or chosen.shape[1:]
    return chosen.slice_count * height * width


def _without_failed(
    chosen: Candidate,
    rejected: list[Rejected],
    failed: list[Rejected],
    *,
    limits: LoadLimits,
) -> tuple[Candidate, list[Rejected]]:
    """The candidate planned again without the files whose spot check failed, until
    a spot check passes; StudyLoadError when none does after a few rounds."""
    for _ in range(_SPOT_ROUNDS):
        if not failed:
            return chosen, rejected
        rejected = rejected + failed
        names = {r.name for r in failed}
        remaining = [s for s in chosen.sources if s.name not in names]
        if not remaining:
            break
        chosen = _PLANNERS[chosen.kind](remaining, limits=limits)
        rejected = rejected + chosen.rejected
        if not chosen.slice_count:
            break
        failed = chosen.spot_check()
    else:
        if not failed:
            return chosen, rejected
        rejected = rejected + failed
    raise StudyLoadError("no slice of the upload could be decoded", rejected=rejected)


def _load(chosen: Candidate, rejected: list[Rejected]) -> LoadResult:
    """Decode the chosen study; everything set aside, before and while decoding."""
    result = chosen.load()
    rejected = rejected + result.rejected
    if not result.slices:
        raise StudyLoadError(
            "no slice of the upload could be decoded", rejected=rejected
        )
    warnings = _reduction_warnings(chosen) + chosen.warnings + result.warnings
    return dataclasses.replace(
        result,
        rejected=rejected,
        warnings=warnings,
        metadata=_as_read(result.metadata, chosen),
    )


def _reduced(chosen: Candidate) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(stored, read) (H, W) of the slices when the reader reduces them."""
    if chosen.stored_size is None:
        return None
    height, width = chosen.stored_size
    stored, read = (height, width), (chosen.shape[1], chosen.shape[2])
    return None if stored == read else (stored, read)


def _reduction_warnings(chosen: Candidate) -> list[str]:
    sizes = _reduced(chosen)
    return [reduction_warning(*sizes)] if sizes else []


def _as_read(metadata: StudyMetadata, chosen: Candidate) -> StudyMetadata:
    """Metadata of the slices as read: a reduced slice's pixels are larger."""
    sizes = _reduced(chosen)
    if sizes is None:
        return metadata
    stored, read = sizes
    return dataclasses.replace(
        metadata,
        stored_size=stored,
        reduction=reduction_factor(stored, read),
        pixel_spacing_mm=scaled_spacing(
            metadata.pixel_spacing_mm, stored=stored, read=read
        ),
    )


def _as_check(result: LoadResult, *, kind: str) -> UploadCheck:
    depth, height, width = result.volume.shape
    return UploadCheck(
        kind=kind,
        shape=(depth, height, width),
        slices=result.slices,
        metadata=result.metadata,
        consumed=result.consumed,
        rejected=result.rejected,
        warnings=result.warnings,
        fully_decoded=True,
    )


def _choose(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits,
    workdir: str,
    names: Mapping[str, str] | None,
) -> tuple[Candidate, list[Rejected]]:
    """The candidate with most slices, and everything set aside so far."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    collected = collect_sources(
        paths, limits=limits, workdir=Path(workdir), names=names
    )
    candidates = _plan_all(collected.sources, limits=limits)
    rejected = collected.rejected + [r for c in candidates for r in c.rejected]
    viable = [c for c in candidates if c.slice_count]
    if not viable:
        raise StudyLoadError(
            _nothing_usable(collected.sources, rejected), rejected=rejected
        )
    chosen = max(viable, key=lambda c: c.slice_count)  # ties: first planner wins
    rejected += [r for c in viable if c is not chosen for r in _mixed(chosen, c)]
    try:
        check_volume(shape=chosen.shape, limits=limits)
    except StudyLoadError as exc:
        raise StudyLoadError(exc.summary, rejected=rejected) from None
    return chosen, rejected


def _plan_all(sources: list[Source], *, limits: LoadLimits) -> list[Candidate]:
    return [
        plan(of_kind, limits=limits)
        for kind, plan in _PLANNERS.items()
        if (of_kind := [s for s in sources if s.kind == kind])
    ]


def _mixed(chosen: Candidate, other: Candidate) -> list[Rejected]:
    reason = (
        f"mixed upload: the study was read from the {chosen.slice_count} "
        f"{chosen.label} slices; {other.label} files are not used with them"
    )
    return [Rejected(source.name, reason) for source in other.sources]


def _nothing_usable(sources: list[Source], rejected: list[Rejected]) -> str:
    if not sources and not rejected:
        return "the upload holds no files"
    return "no usable slices in the upload"
