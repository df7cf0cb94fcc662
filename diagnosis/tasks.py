import logging

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from . import recovery, services

logger = logging.getLogger(__name__)


#: A study's work: acknowledged once done (a worker's death gives the message back),
#: bounded in time, and retried only for infrastructure errors; a model or reader
#: failure is recorded instead.
STUDY_TASK_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": settings.STUDY_SOFT_TIME_LIMIT,
    "time_limit": settings.STUDY_SOFT_TIME_LIMIT + 30,
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 8,
}


@shared_task(bind=True, name="diagnosis.tasks.study_process_task", **STUDY_TASK_OPTIONS)
def study_process_task(self, study_id: int) -> str:
    outcome = services.study_process(study_id=study_id)
    if outcome == services.ProcessOutcome.BUSY:
        # Another worker holds a fresh claim; if it died, its lease runs out and the
        # next attempt takes over.
        raise self.retry(countdown=settings.PROCESSING_LEASE_SECONDS, max_retries=20)
    return outcome


@shared_task(name="diagnosis.tasks.series_read_task", **STUDY_TASK_OPTIONS)
def series_read_task(study_id: int) -> int:
    """A ready study's other series, read for the viewer (the AI never sees them)."""
    return services.series_read_pending(study_id=study_id)


@shared_task(name="diagnosis.tasks.study_sweep_task", ignore_result=True)
def study_sweep_task() -> dict:
    """Beat, every STUDY_SWEEP_SECONDS: studies whose worker died or whose message was
    lost are sent again (diagnosis.recovery)."""
    result = recovery.studies_requeue_stalled()
    return {"resent": result.resent, "failed": result.failed, "series": result.series}


@worker_process_init.connect
def _load_active_model(**kwargs) -> None:
    """Load the active CT model as soon as a pool process starts (after the fork, so
    TensorFlow never crosses one), instead of on the first study it receives."""
    if not settings.WARM_MODEL_ON_WORKER_START:
        return
    from django.db import close_old_connections

    from . import extensions, ml_adapter

    try:
        model = extensions.model_version_for_study(modality="CT")
        if model is not None:
            ml_adapter.warm_up(model_path=model.path, model_sha256=model.sha256)
    except Exception:  # a broken model is reported when a study needs it
        logger.exception("Could not load the active model at worker start")
    finally:
        close_old_connections()
