"""Instances of a network study that arrive after it was queued: a scanner that
sends a late series, or a second association after the quiet time. A radiologist
expects one study, so they join it and it is analysed again, unless someone has
read it already: a reading never changes under the radiologist who made it."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record

from .. import storage
from ..models import Study, StudyStatus, WorklistBucket
from ..queue import study_enqueue
from .common import StoredFile, stored_files
from .upload import (
    _check_upload,
    _content_hash,
    _dicom_metadata,
    _file_rows,
    _rejected,
    _store,
    _warnings,
    used_files,
)


class MergeOutcome(StrEnum):
    MERGED = "merged"  # added; the study is queued for analysis again
    UNCHANGED = "unchanged"  # every instance was in the study already
    BUSY = "busy"  # a worker is analysing it now: try again shortly
    READ = "read"  # a radiologist has read it: left as it was


def study_add_instances(
    *,
    study_id: int,
    files: Sequence[StoredFile],
    last_instance_at: datetime.datetime,
    audit: AuditContext | None = None,
) -> MergeOutcome:
    """Add received instances to a study that is not read yet, validating the
    study with them as an upload is validated, and queue it for analysis again.
    Raises UploadError (nothing changed) when the whole no longer makes a study.
    Instances already in the study (by content) are not added twice."""
    current = stored_files(study_id)
    known = {f.sha256 for f in current}
    new = [f for f in files if f.sha256 not in known]
    if not new:
        return MergeOutcome.UNCHANGED
    blocked = _blocked(Study.objects.get(pk=study_id))
    if blocked is not None:
        return blocked
    union = current + new
    result = _check_upload(union)
    return _merge_save(study_id, union, result, last_instance_at, audit)


def _blocked(study: Study) -> MergeOutcome | None:
    if study.reviewed:
        return MergeOutcome.READ
    if study.status == StudyStatus.PROCESSING:
        return MergeOutcome.BUSY
    return None


def _merge_save(study_id, union, result, last_instance_at, audit) -> MergeOutcome:
    used = used_files(result, union)
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study_id)
        blocked = _blocked(study)  # a worker or a reading may have come meanwhile
        if blocked is not None:
            return blocked
        storage.lock_contents(f.sha256 for f in used)
        new_files = []
        try:
            stored = _store(used, new_files)
            before = study.slice_count
            _replace_rows(study, result, union, stored, last_instance_at)
            audit_record(
                action="study.merge",
                context=audit,
                obj=study,
                detail={"slices_before": before, "slices": study.slice_count},
            )
        except Exception:
            storage.remove_quietly(new_files)
            raise
        transaction.on_commit(lambda: study_enqueue(study_id=study_id))
    return MergeOutcome.MERGED


def _replace_rows(study, result, union, stored, last_instance_at) -> None:
    study.files.all().delete()
    study.slices.all().delete()
    study.other_series.all().delete()
    now = timezone.now()
    study.content_hash = _content_hash(union)
    study.slice_count = study.progress_total = len(result.slices)
    study.rejected_files = _rejected(result.rejected, union)
    study.warnings = _warnings(result, union)
    study.dicom_metadata = _dicom_metadata(result.metadata)
    study.last_instance_at = max(last_instance_at, study.last_instance_at or now)
    # As study_reprocess resets a study for a new analysis.
    study.status, study.bucket = StudyStatus.QUEUED, WorklistBucket.IN_PROGRESS
    study.queued_at, study.ready_at, study.failed_at = now, None, None
    study.error_message, study.progress_done, study.attempts = "", 0, 0
    study.resent_at = None
    study.save()
    _file_rows(study, result=result, stored=stored)
