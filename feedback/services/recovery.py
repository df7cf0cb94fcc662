"""Writes that rescue retraining jobs whose worker died or whose message was lost,
as diagnosis/recovery.py rescues studies.

A training worker that dies (killed, out of memory, its machine gone) leaves its job
RUNNING with a heartbeat that has stopped (the job beats on every epoch and log
line), and it would block the next scheduled job. A broker restarted without its
data loses a QUEUED job's message. The beat sweeper (`job_sweep_task`) sends each
such job again; `retraining_job_run` claims with a guarded UPDATE, so a duplicate
message does nothing, and a retried job starts from a clean run folder. A job whose
workers died RETRAIN_MAX_ATTEMPTS times fails with the reason instead: training the
same data again would only kill the next worker too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.audit import audit_record
from stroke_portal import infrastructure

from .. import queue
from ..models import JobStatus, RetrainingJob
from .jobs import STALE_AFTER, job_log

logger = logging.getLogger(__name__)

RUN_TASK = "feedback.tasks.retrain_task"


@dataclass
class JobSweep:
    resent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def retraining_jobs_requeue_stalled() -> JobSweep:
    """Send again every RUNNING job silent for STALE_AFTER and every QUEUED job
    older than that while the training queue is empty; fail a job that has lost
    RETRAIN_MAX_ATTEMPTS workers. One message per job per STALE_AFTER."""
    now = timezone.now()
    cutoff = now - STALE_AFTER
    sweep = JobSweep()
    stalled = RetrainingJob.objects.filter(
        _not_resent_since(cutoff), status=JobStatus.RUNNING, heartbeat_at__lt=cutoff
    )
    for job_id, attempts in stalled.values_list("pk", "attempts"):
        if attempts >= settings.RETRAIN_MAX_ATTEMPTS:
            if _job_abandon(stalled, job_id, now):
                sweep.failed.append(job_id)
        elif _job_resend(stalled, job_id, now):
            sweep.resent.append(job_id)
    lost = RetrainingJob.objects.filter(
        _not_resent_since(cutoff),
        status=JobStatus.QUEUED,
        cancel_requested=False,
        created_at__lt=cutoff,
    )
    if lost.exists() and infrastructure.broker_queue_length(RUN_TASK) == 0:
        for job_id in lost.values_list("pk", flat=True):
            if _job_resend(lost, job_id, now):
                sweep.resent.append(job_id)
    return sweep


def _not_resent_since(cutoff: datetime) -> Q:
    return Q(resent_at__isnull=True) | Q(resent_at__lt=cutoff)


def _job_resend(candidates: QuerySet, job_id: int, now: datetime) -> bool:
    """Put the job back in the queue and send it, guarded by the conditions that
    found it: two sweeps at once send it once, and a job that beat meanwhile stays."""
    with transaction.atomic():
        if not candidates.filter(pk=job_id).update(
            status=JobStatus.QUEUED, resent_at=now
        ):
            return False
        job = RetrainingJob.objects.get(pk=job_id)
        job_log(
            job_id=job_id,
            text=f"\nSent again at {timezone.localtime(now):%Y-%m-%d %H:%M}: its "
            "worker stopped answering (lost, killed or out of memory).\n",
        )
        audit_record(
            action="retraining.requeue",
            actor_username="sweeper",
            obj=job,
            detail={"attempts": job.attempts},
        )
        transaction.on_commit(lambda: queue.retraining_job_enqueue(job_id=job_id))
    logger.warning("Sweep: retraining job %s had no live worker; sent again", job_id)
    return True


def _job_abandon(candidates: QuerySet, job_id: int, now: datetime) -> bool:
    reason = (
        f"The training worker was lost {settings.RETRAIN_MAX_ATTEMPTS} times while "
        "running this job (killed, out of memory or its machine gone); it was not "
        "sent again. The worker logs have the details; start a new job when fixed."
    )
    with transaction.atomic():
        if not candidates.filter(pk=job_id).update(
            status=JobStatus.FAILED, finished_at=now, error_message=reason
        ):
            return False
        job_log(job_id=job_id, text=f"\nFAILED: {reason}\n")
        audit_record(
            action="retraining.abandon",
            actor_username="sweeper",
            obj=RetrainingJob.objects.get(pk=job_id),
            detail={"reason": reason},
        )
    logger.error("Sweep: retraining job %s abandoned: %s", job_id, reason)
    return True
