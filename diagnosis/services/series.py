"""A study's other series (diagnosis.models.Series), read in the worker for the
viewer only: the AI never sees them. Each is read under the study's claim, before
the study is made ready, so a redelivered message reads it again with the rest; a
series that cannot be read says why and leaves the study as it is."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .. import ml_adapter, storage
from ..models import Series, SeriesStatus, Study
from .common import StoredFile, file_names, scrub_paths, stored_files

logger = logging.getLogger(__name__)


@dataclass
class SeriesRead:
    """One series as the worker read it: its volume written under the claim's
    token (`partial`) or why it could not be read (`error`)."""

    series: Series
    partial: Path | None = None
    slice_count: int = 0
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def series_read_all(
    *, study: Study, token: str, heartbeat: Callable[[], None]
) -> list[SeriesRead]:
    """Read each of the study's other series (HU, ordered by position, as the
    analysed one) and write its volume beside the analysed volume, named by the
    claim so that a worker that lost the claim overwrites nothing."""
    series = list(study.other_series.all())
    if not series:
        return []
    files = stored_files(study.pk)
    reads = []
    for item in series:
        reads.append(_read_one(study, item, files=files, token=token))
        heartbeat()
    return reads


def _read_one(
    study: Study, series: Series, *, files: list[StoredFile], token: str
) -> SeriesRead:
    holding = set(series.files)
    mine = [f for f in files if f.sha256 in holding] or files
    names = file_names(mine)
    try:
        loaded = ml_adapter.read_upload(
            [f.path for f in mine],
            names=names,
            series_uid=series.series_instance_uid,
        )
    except INFRASTRUCTURE_ERRORS:
        raise
    except (ml_adapter.StudyLoadError, ValueError, OSError) as exc:
        return SeriesRead(series, error=scrub_paths(str(exc), names=names))
    except Exception as exc:  # a reader bug must not fail a study it did not analyse
        logger.exception("Series %s of study %s could not be read", series, study.pk)
        return SeriesRead(series, error=f"the reader failed ({type(exc).__name__})")
    final = storage.volume_path(study.pk, series=series.index)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.stem}-{token}.npy")
    np.save(partial, loaded.volume.astype(np.float32))
    return SeriesRead(
        series,
        partial=partial,
        slice_count=len(loaded.slices),
        warnings=_read_warnings(series, loaded, names=names),
    )


def _read_warnings(series: Series, loaded, *, names) -> list[str]:
    warnings = [scrub_paths(w, names=names) for w in loaded.warnings]
    if len(loaded.slices) != series.slice_count:
        damaged = "; ".join(f"{r.name}: {r.reason}" for r in loaded.rejected[:3])
        warnings.append(
            f"only {len(loaded.slices)} of its {series.slice_count} slices could be "
            f"read{f' ({scrub_paths(damaged, names=names)})' if damaged else ''}"
        )
    return warnings


def series_results_save(reads: list[SeriesRead]) -> None:
    """Record what was read, in the transaction that makes the study ready."""
    for read in reads:
        ok = read.partial is not None
        fields = {
            "status": SeriesStatus.READY if ok else SeriesStatus.FAILED,
            "error_message": "" if ok else f"Could not be read: {read.error}"[:2000],
            "warnings": read.warnings,
        }
        if ok:
            fields["slice_count"] = read.slice_count
        Series.objects.filter(pk=read.series.pk).update(**fields)


def series_volumes_place(study_id: int, reads: list[SeriesRead]) -> None:
    """Once the study is ready: each volume read takes its final name."""
    for read in reads:
        if read.partial is not None:
            final = storage.volume_path(study_id, series=read.series.index)
            read.partial.replace(final)


def series_volumes_discard(reads: list[SeriesRead]) -> None:
    """A worker that lost the claim leaves nothing of its reading behind."""
    storage.remove_quietly(r.partial for r in reads if r.partial is not None)
