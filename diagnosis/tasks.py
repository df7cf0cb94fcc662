from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError

from . import services


@shared_task(
    bind=True,
    name="diagnosis.tasks.study_process_task",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.STUDY_SOFT_TIME_LIMIT,
    time_limit=settings.STUDY_SOFT_TIME_LIMIT + 30,
    # Only infrastructure errors are retried; a model failure is recorded instead.
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=8,
)
def study_process_task(self, study_id: int) -> str:
    outcome = services.study_process(study_id=study_id)
    if outcome == services.ProcessOutcome.BUSY:
        # Another worker holds a fresh claim; if it died, its lease runs out and the
        # next attempt takes over.
        raise self.retry(countdown=settings.PROCESSING_LEASE_SECONDS, max_retries=20)
    return outcome
