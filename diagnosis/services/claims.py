"""A worker's claim on a study: taken with a guarded UPDATE so that one worker wins,
kept alive by its heartbeat, and given up (to the next message) when its worker
dies. Every write under a claim is guarded by the claim's token."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from ..models import Study, StudyStatus, WorklistBucket
from .common import file_names, scrub_paths, stored_files


def _lease() -> timedelta:
    return timedelta(seconds=settings.PROCESSING_LEASE_SECONDS)


def study_claim(*, study_id: int, token: str) -> bool:
    """Take the study for processing: queued ones, or processing ones whose worker
    stopped beating (it died). A guarded UPDATE, so only one worker wins. A study
    that has already taken STUDY_MAX_ATTEMPTS workers down with it is not taken
    again (the message that Celery re-delivers after each death would otherwise
    kill worker after worker): the sweeper fails it with a reason."""
    now = timezone.now()
    retakeable = Q(
        status=StudyStatus.PROCESSING, attempts__lt=settings.STUDY_MAX_ATTEMPTS
    )
    stale = Q(heartbeat_at__lt=now - _lease())
    orphan = _orphaned_claim(study_id)
    if orphan:
        stale |= Q(claimed_by=orphan)
    claimable = Q(status=StudyStatus.QUEUED) | (retakeable & stale)
    return bool(
        Study.objects.filter(claimable, pk=study_id).update(
            status=StudyStatus.PROCESSING,
            bucket=WorklistBucket.IN_PROGRESS,
            claim_token=token,
            claimed_by=_this_process(),
            heartbeat_at=now,
            processing_started_at=now,
            attempts=F("attempts") + 1,
            progress_done=0,
            error_message="",
            outside_scope_reason="",
        )
    )


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _orphaned_claim(study_id: int) -> str:
    """The study's claim ("host:pid") when it belongs to a process on this host that
    no longer exists: the pool process that held it was killed, and the message
    Celery gave back at once (reject_on_worker_lost) may take over now rather than
    after the lease. "" otherwise (another host, a live process, no claim)."""
    owner = (
        Study.objects.filter(pk=study_id, status=StudyStatus.PROCESSING)
        .values_list("claimed_by", flat=True)
        .first()
    )
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return ""
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return owner
    except OSError:  # exists, owned by someone else
        return ""
    return ""


def claim_heartbeat(study_id: int, token: str, done: int, total: int) -> None:
    Study.objects.filter(pk=study_id, claim_token=token).update(
        progress_done=done, progress_total=total, heartbeat_at=timezone.now()
    )


def claim_fail(study_id: int, token: str, message: str) -> None:
    """Fail the study with `message` (server paths replaced by the uploader's file
    names), unless another worker has taken it meanwhile."""
    names = file_names(stored_files(study_id))
    Study.objects.filter(
        pk=study_id, status=StudyStatus.PROCESSING, claim_token=token
    ).update(
        status=StudyStatus.FAILED,
        bucket=WorklistBucket.FAILED,
        failed_at=timezone.now(),
        error_message=scrub_paths(message, names=names)[:2000],
    )
