"""Feedback tasks. `retrain_task` and `model_check_task` run on the `training` queue
(CELERY_TASK_ROUTES); TensorFlow is imported inside them, through the services'
ml adapter, never when this module is imported."""

from celery import shared_task
from django.conf import settings

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from . import services


@shared_task(name="feedback.tasks.dataset_index_task", acks_late=True)
def dataset_index_task(dataset_id: int) -> str:
    return services.dataset_index(dataset_id=dataset_id)


@shared_task(
    name="feedback.tasks.retrain_task",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.RETRAIN_TIME_LIMIT_SECONDS,
    time_limit=settings.RETRAIN_TIME_LIMIT_SECONDS + 60,
    # Only infrastructure errors are retried; a training crash is recorded instead.
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=5,
    max_retries=3,
)
def retrain_task(job_id: int) -> str:
    return services.retraining_job_run(job_id=job_id)


@shared_task(
    name="feedback.tasks.model_check_task",
    acks_late=True,
    soft_time_limit=settings.RETRAIN_TIME_LIMIT_SECONDS,
)
def model_check_task(version_id: int) -> str:
    return services.model_version_check(version_id=version_id)


@shared_task(name="feedback.tasks.retraining_schedule_check")
def retraining_schedule_check() -> int | None:
    job = services.retraining_schedule_check()
    return job.pk if job else None


@shared_task(name="feedback.tasks.job_sweep_task", ignore_result=True)
def job_sweep_task() -> dict:
    """Beat: send again the retraining jobs whose worker died or whose message was
    lost (feedback/services/recovery.py). Routed to the default queue: a sweep
    queued behind the training job it rescues would never run."""
    sweep = services.retraining_jobs_requeue_stalled()
    return {"resent": sweep.resent, "failed": sweep.failed}
