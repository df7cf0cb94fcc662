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
from ml.io.sources import Source, collect_sources
from ml.io.types import LoadResult, Rejected, StudyLoadError

PathLike = str | os.PathLike[str]
DEFAULT_LIMITS = LoadLimits()
_PLANNERS = {"dicom": plan_dicom, "nifti": plan_nifti, "image": plan_images}


@dataclasses.dataclass
class UploadCheck:
    """What :func:`check_upload` found, without decoding any pixel."""

    kind: str  # "dicom" | "image" | "nifti"
    shape: tuple[int, int, int]  # (D, H, W) of the volume load_study will return
    consumed: list[str]
    rejected: list[Rejected]
    warnings: list[str]


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
        result = chosen.load()
    rejected += result.rejected
    if not result.slices:
        raise StudyLoadError(
            "no slice of the upload could be decoded", rejected=rejected
        )
    warnings = chosen.warnings + result.warnings
    return dataclasses.replace(result, rejected=rejected, warnings=warnings)


def check_upload(
    paths: PathLike | Iterable[PathLike],
    *,
    limits: LoadLimits = DEFAULT_LIMITS,
    names: Mapping[str, str] | None = None,
) -> UploadCheck:
    """Validate an upload as :func:`load_study` would, reading headers only.

    Fast enough for a web request: files are typed, limits checked, headers parsed
    and one study chosen, but pixels are not decoded (so a file whose compressed
    pixel data is damaged is only caught by load_study). Raises StudyLoadError.
    """
    with tempfile.TemporaryDirectory(prefix="ml-io-") as workdir:
        chosen, rejected = _choose(paths, limits=limits, workdir=workdir, names=names)
    return UploadCheck(
        kind=chosen.kind,
        shape=chosen.shape,
        consumed=[s.name for s in chosen.sources],
        rejected=rejected,
        warnings=chosen.warnings,
    )


def _choose(paths, *, limits, workdir, names) -> tuple[Candidate, list[Rejected]]:
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
