"""The one entry point: an upload in, one study (or a clear refusal) out."""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ml.io.dicom import plan_dicom
from ml.io.limits import LoadLimits, format_pixels
from ml.io.nifti import plan_nifti
from ml.io.plan import Candidate, check_volume
from ml.io.raster import plan_images
from ml.io.resample import reduction_factor, reduction_warning, scaled_spacing
from ml.io.sources import Source, collect_sources
from ml.io.types import (
    LoadResult,
    Rejected,
    SeriesInfo,
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
    whole upload was decoded to tell which files to set aside. ``series`` are
    the study's other axial series that were kept (see :func:`load_study`).
    """

    kind: str  # "dicom" | "image" | "nifti"
    shape: tuple[int, int, int]
    slices: list[SliceInfo]
    metadata: StudyMetadata
    consumed: list[str]
    rejected: list[Rejected]
    warnings: list[str]
    fully_decoded: bool = False
    series: list[SeriesInfo] = dataclasses.field(default_factory=list)


def load_study(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits = DEFAULT_LIMITS,
    names: Mapping[str, str] | None = None,
    series_uid: str | None = None,
) -> LoadResult:
    """Read one study from files, folders and zips, typed by content.

    Returns the slices of one study as a (D, H, W) float32 volume ordered inferior
    to superior (Hounsfield units for CT DICOM, see ``metadata.units``), with every
    file set aside and why. ``names`` maps an input path (as given) to the name the
    user knows it by. Raises StudyLoadError when nothing usable is left or the study
    breaks ``limits``.

    DICOM: the series read is the axial series with most slices, or the one whose
    SeriesInstanceUID is ``series_uid``. The study's other axial series are not
    read but listed in ``series`` (files not in ``rejected``) as long as the study
    with them keeps within ``limits`` (slices, pixels and bytes counted over every
    series kept); those beyond are set aside with the reason.
    """
    with tempfile.TemporaryDirectory(prefix="ml-io-") as workdir:
        chosen, rejected = _choose(
            paths, limits=limits, workdir=workdir, names=names, series_uid=series_uid
        )
        series, rejected = _other_series(chosen, rejected, limits=limits)
        return _load(chosen, rejected, series=series)


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
        series, rejected = _other_series(
            chosen, rejected, limits=limits, spot_check=True
        )
        failed = chosen.spot_check()
        if failed and _stored_pixels(chosen) <= limits.max_check_pixels:
            loaded = _load(chosen, rejected, series=series)
            return _as_check(loaded, kind=chosen.kind)
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
        series=series,
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
        # Only the chosen series' files remain: the replan keeps that series.
        chosen = _plan(chosen.kind, remaining, limits=limits, series_uid=None)
        rejected = rejected + chosen.rejected
        if not chosen.slice_count:
            break
        failed = chosen.spot_check()
    else:
        if not failed:
            return chosen, rejected
        rejected = rejected + failed
    raise StudyLoadError("no slice of the upload could be decoded", rejected=rejected)


def _load(
    chosen: Candidate, rejected: list[Rejected], *, series: list[SeriesInfo]
) -> LoadResult:
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
        series=series,
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
        series=result.series,
    )


def _choose(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits,
    workdir: str,
    names: Mapping[str, str] | None,
    series_uid: str | None = None,
) -> tuple[Candidate, list[Rejected]]:
    """The candidate with most slices, and everything set aside so far (not the
    files of the chosen candidate's other series: see :func:`_other_series`)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    collected = collect_sources(
        paths, limits=limits, workdir=Path(workdir), names=names
    )
    candidates = _plan_all(collected.sources, limits=limits, series_uid=series_uid)
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


def _plan_all(
    sources: list[Source], *, limits: LoadLimits, series_uid: str | None
) -> list[Candidate]:
    return [
        _plan(kind, of_kind, limits=limits, series_uid=series_uid)
        for kind in _PLANNERS
        if (of_kind := [s for s in sources if s.kind == kind])
    ]


def _plan(
    kind: str, sources: list[Source], *, limits: LoadLimits, series_uid: str | None
) -> Candidate:
    plan = _PLANNERS[kind]
    if kind == "dicom" and series_uid:
        plan = functools.partial(plan_dicom, series_uid=series_uid)
    return plan(sources, limits=limits)


def _mixed(chosen: Candidate, other: Candidate) -> list[Rejected]:
    reason = (
        f"mixed upload: the study was read from the {chosen.slice_count} "
        f"{chosen.label} slices; {other.label} files are not used with them"
    )
    return [
        Rejected(source.name, reason)
        for candidate in (other, *other.series)
        for source in candidate.sources
    ]


def _other_series(
    chosen: Candidate,
    rejected: list[Rejected],
    *,
    limits: LoadLimits,
    spot_check: bool = False,
) -> tuple[list[SeriesInfo], list[Rejected]]:
    """The chosen candidate's other series that are kept, and everything set aside.

    In series order, each is kept while the study with it keeps within ``limits``
    (slices, pixels and float32 bytes over the chosen series and those kept so
    far); one that passes a limit, or, with ``spot_check``, whose sample slices do
    not decode, is set aside whole, each of its files with the reason. The chosen
    series always comes first: an extra series never displaces it."""
    kept: list[SeriesInfo] = []
    slices, pixels = chosen.slice_count, _pixels(chosen.shape)
    for other in chosen.series:
        rejected = rejected + other.rejected
        reason = _over_limits(other, slices=slices, pixels=pixels, limits=limits)
        failed = [] if reason or not spot_check else other.spot_check()
        if reason or failed:
            rejected = rejected + failed + _whole_series(other, reason, failed)
            continue
        kept.append(_series_info(other))
        slices, pixels = slices + other.slice_count, pixels + _pixels(other.shape)
    return kept, rejected


def _pixels(shape: tuple[int, int, int]) -> int:
    depth, height, width = shape
    return depth * height * width


def _over_limits(
    other: Candidate, *, slices: int, pixels: int, limits: LoadLimits
) -> str:
    """Why keeping ``other`` beside ``slices`` and ``pixels`` kept already would
    pass a limit, or ''."""
    depth, height, width = other.shape
    head = f"series {other.series_label} set aside: with its {depth} slices"
    tail = "(the analysed series and the other series kept come first)"
    if slices + depth > limits.max_slices:
        return (
            f"{head} the study would have {slices + depth} slices; at most "
            f"{limits.max_slices} are kept per study {tail}"
        )
    total = pixels + depth * height * width
    if total > limits.max_study_pixels or total * 4 > limits.max_total_bytes:
        budget = min(limits.max_study_pixels, limits.max_total_bytes // 4)
        return (
            f"{head} of {width}x{height} pixels the study would have "
            f"{format_pixels(total)}; at most {format_pixels(budget)} are kept per "
            f"study {tail}"
        )
    return ""


def _whole_series(
    other: Candidate, reason: str, failed: list[Rejected]
) -> list[Rejected]:
    named = {r.name for r in failed}
    if not reason:
        first = failed[0].name
        reason = f"series {other.series_label} set aside: its slice {first} could "
        reason += "not be decoded"
    return [Rejected(s.name, reason) for s in other.sources if s.name not in named]


def _series_info(other: Candidate) -> SeriesInfo:
    expected = other.expected
    metadata = _as_read(expected.metadata, other)
    return SeriesInfo(
        uid=metadata.series_instance_uid or "",
        label=other.series_label,
        shape=other.shape,
        slices=expected.slices,
        metadata=metadata,
        consumed=[s.name for s in other.sources],
        warnings=_reduction_warnings(other) + other.warnings + expected.warnings,
    )


def _nothing_usable(sources: list[Source], rejected: list[Rejected]) -> str:
    if not sources and not rejected:
        return "the upload holds no files"
    return "no usable slices in the upload"
