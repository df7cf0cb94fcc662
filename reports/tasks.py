from celery import shared_task

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from . import services


@shared_task(
    name="reports.tasks.report_render_task",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=120,
    time_limit=150,
    # Only infrastructure errors are retried; a rendering bug would fail again.
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def report_render_task(study_id: int) -> str:
    """Safe to run twice: the second run finds the report for the state and stops."""
    report = services.report_render_current(study_id=study_id)
    return report.reference if report else "nothing to report"
