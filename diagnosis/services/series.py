"""A study's other series (diagnosis.models.Series), read in the worker for the
viewer only: the AI never sees them. They are read after the study is ready, in a
task of their own (`series_read_task`), so that a study's alerts and its place on
the worklist never wait for series the AI does not read; a series that cannot be
read says why and leaves the study as it is."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .. import ml_adapter, storage
from ..models import Series, SeriesStatus, Study, StudyStatus
from .common import StoredFile, file_names, scrub_paths, stored_files

logger = logging.getLogger(__name__)


@dataclass
class SeriesRead:
    """One series as the worker read it: its volume written under a name of its
    own (`partial`) or why it could not be read (`error`)."""

    series: Series
    partial: Path | None = None
    slice_count: int = 0
    #: Each slice's position (mm) along the superior-pointing normal, or None.
    positions: list[float | None] = field(default_factory=list)
    error: str = ""
    warnings: list[str] = field(default_factory=list)


def series_read_pending(*, study_id: int) -> int:
    """Read the ready study's other series not read yet (HU, ordered by position,
    as the analysed one), write each volume beside the analysed volume and record
    it; returns how many were recorded. Safe to run twice: a volume takes its final
    name before a guarded UPDATE records it, and a second reader writes the same
    values."""
    study = Study.objects.filter(pk=study_id, status=StudyStatus.READY).first()
    if study is None:  # reprocessing or gone: its next ready reads them
        return 0
    pending = list(study.other_series.filter(status=SeriesStatus.PENDING))
    if not pending:
        return 0
    files = stored_files(study.pk)
    recorded = 0
    for series in pending:
        read = _read_one(study, series, files=files, token=uuid.uuid4().hex)
        if read.partial is not None:
            read.partial.replace(storage.volume_path(study.pk, series=series.index))
        recorded += _series_record(read)
    return recorded


def series_pending_exist(*, study_id: int) -> bool:
    return Series.objects.filter(
        study_id=study_id, status=SeriesStatus.PENDING
    ).exists()


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
        positions=[_rounded(s.position_mm) for s in loaded.slices],
        warnings=_read_warnings(series, loaded, names=names),
    )


def _rounded(position: float | None) -> float | None:
    return round(position, 2) if position is not None else None


def _read_warnings(series: Series, loaded, *, names) -> list[str]:
    warnings = [scrub_paths(w, names=names) for w in loaded.warnings]
    if len(loaded.slices) != series.slice_count:
        damaged = "; ".join(f"{r.name}: {r.reason}" for r in loaded.rejected[:3])
        warnings.append(
            f"only {len(loaded.slices)} of its {series.slice_count} slices could be "
            f"read{f' ({scrub_paths(damaged, names=names)})' if damaged else ''}"
        )
    return warnings


def _series_record(read: SeriesRead) -> int:
    """Record what was read, once: only a series still pending is changed."""
    ok = read.partial is not None
    fields = {
        "status": SeriesStatus.READY if ok else SeriesStatus.FAILED,
        "error_message": "" if ok else f"Could not be read: {read.error}"[:2000],
        "warnings": read.warnings,
    }
    if ok:
        fields["slice_count"] = read.slice_count
        # The viewer opens another series at the level the reader was looking at.
        fields["dicom_metadata"] = {
            **(read.series.dicom_metadata or {}),
            "positions_mm": read.positions,
        }
    return Series.objects.filter(pk=read.series.pk, status=SeriesStatus.PENDING).update(
        **fields
    )
