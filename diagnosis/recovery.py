"""Writes that rescue studies whose worker died or whose message the broker lost.

A worker that dies with a study (SIGKILL, out of memory, its machine gone) leaves it
PROCESSING with a heartbeat that has stopped. Redis would hand the worker's
unacknowledged message to another worker only after its visibility timeout, which
must outlast a training job (hours, see settings). A broker restarted without its
data loses the messages of QUEUED studies. The beat sweeper (`study_sweep_task`,
every STUDY_SWEEP_SECONDS) finds both in the database, the source of truth, and sends
each such study a new message. `services.study_claim` is a guarded UPDATE, so a
message that turns up twice finds the study taken or done and does nothing. The same
sweep sends again the other series (for viewing) of a ready study that were left
unread past a lease while their queue is empty; reading them twice is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from stroke_portal import infrastructure

from . import queue
from .models import SeriesStatus, Study, StudyStatus, WorklistBucket

logger = logging.getLogger(__name__)

PROCESS_TASK = "diagnosis.tasks.study_process_task"
SERIES_TASK = "diagnosis.tasks.series_read_task"


class Action:
    REQUEUE = "study.requeue"
    ABANDON = "study.abandon"


@dataclass
class SweepResult:
    """Primary keys of the studies sent again, and of those failed instead."""

    resent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    #: Ready studies whose other series were sent to be read again.
    series: list[int] = field(default_factory=list)


def broker_queue_length() -> int | None:
    """Messages waiting in the queue studies are sent to (None: no answer)."""
    return infrastructure.broker_queue_length(PROCESS_TASK)


def series_queue_length() -> int | None:
    """Messages waiting in the queue other series are sent to (None: no answer)."""
    return infrastructure.broker_queue_length(SERIES_TASK)


def studies_requeue_stalled() -> SweepResult:
    """Send again every PROCESSING study whose heartbeat is older than the lease (its
    worker died), and every QUEUED study older than the lease while the queue is
    empty (its message is lost: a waiting study's message is still in the queue). At
    most one message per study per lease; a study that has already stopped
    STUDY_MAX_ATTEMPTS workers is failed instead of being sent to the next one."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PROCESSING_LEASE_SECONDS)
    result = SweepResult()
    stalled = _stalled(cutoff)
    for study_id, attempts in stalled.values_list("pk", "attempts"):
        if attempts >= settings.STUDY_MAX_ATTEMPTS:
            if _study_abandon(candidates=stalled, study_id=study_id, now=now):
                result.failed.append(study_id)
        elif _study_resend(candidates=stalled, study_id=study_id, now=now):
            result.resent.append(study_id)
    lost = _lost(cutoff)
    if lost.exists() and broker_queue_length() == 0:
        for study_id in lost.values_list("pk", flat=True):
            if _study_resend(candidates=lost, study_id=study_id, now=now):
                result.resent.append(study_id)
    result.series = _series_resend(cutoff)
    return result


def _series_resend(cutoff: datetime) -> list[int]:
    """Ready studies whose other series are still unread a lease after the study
    was ready, while their queue is empty: the message was lost or its worker died."""
    unread = list(
        Study.objects.filter(
            status=StudyStatus.READY,
            ready_at__lt=cutoff,
            other_series__status=SeriesStatus.PENDING,
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    if not unread or series_queue_length() != 0:
        return []
    for study_id in unread:
        logger.warning(
            "Sweep: the series of study %s were not read; sent again", study_id
        )
        queue.series_read_enqueue(study_id=study_id)
    return unread


def _not_resent_since(cutoff: datetime) -> Q:
    return Q(resent_at__isnull=True) | Q(resent_at__lt=cutoff)


def _stalled(cutoff: datetime):
    return Study.objects.filter(
        _not_resent_since(cutoff),
        status=StudyStatus.PROCESSING,
        heartbeat_at__lt=cutoff,
    )


def _lost(cutoff: datetime):
    return Study.objects.filter(
        _not_resent_since(cutoff), status=StudyStatus.QUEUED, queued_at__lt=cutoff
    )


def _study_resend(*, candidates, study_id: int, now: datetime) -> bool:
    """Stamp and send one study. The stamp is an UPDATE guarded by the conditions
    that found the study, so two sweeps at once send it once, and a study a worker
    took or finished meanwhile is left alone."""
    with transaction.atomic():
        if not candidates.filter(pk=study_id).update(resent_at=now):
            return False
        study = Study.objects.get(pk=study_id)
        since = study.heartbeat_at if study.status == StudyStatus.PROCESSING else None
        waited = round((now - (since or study.queued_at or now)).total_seconds())
        audit_record(
            action=Action.REQUEUE,
            actor_username="sweeper",
            obj=study,
            detail={"status": study.status, "seconds_without_worker": waited},
        )
        transaction.on_commit(lambda: queue.study_enqueue(study_id=study_id))
    logger.warning(
        "Sweep: study %s was %s with no worker for %s s; sent again",
        study_id,
        study.status,
        waited,
    )
    return True


def _study_abandon(*, candidates, study_id: int, now: datetime) -> bool:
    message = (
        f"The analysis stopped {settings.STUDY_MAX_ATTEMPTS} times: each worker that "
        "took this study was lost (killed, out of memory or its machine gone). An "
        "administrator has the details in the worker logs and may reprocess it."
    )
    with transaction.atomic():
        changed = candidates.filter(pk=study_id).update(
            status=StudyStatus.FAILED,
            bucket=WorklistBucket.FAILED,
            failed_at=now,
            error_message=message,
        )
        if not changed:
            return False
        audit_record(
            action=Action.ABANDON,
            actor_username="sweeper",
            obj=Study.objects.get(pk=study_id),
            detail={"attempts": settings.STUDY_MAX_ATTEMPTS},
        )
    logger.error("Sweep: study %s failed after losing its workers", study_id)
    return True
