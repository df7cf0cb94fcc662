"""dicomnode's Celery tasks: thin, primary keys in, one service called, safe to run
twice. Only dicomnode/queue.py imports this module."""

from celery import shared_task

from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from . import alerts, delivery, ingest

# --- Receive (issue 16) ------------------------------------------------------------


@shared_task(name="dicomnode.tasks.incoming_complete_task", ignore_result=True)
def incoming_complete_task() -> list[int]:
    """Beat, every few seconds: the listener completes quiet collections itself
    about a second after their quiet time; this is the backup for when it is down
    or busy. Claims are guarded UPDATEs, so both running at once is harmless."""
    return ingest.incoming_complete_quiet()


# --- Results back and alerts (deliveries, alerts) -------------------------------
# Network-bound, on the default queue. A peer that is down is not a task failure:
# the delivery records it and the sweep tries again at its next_attempt_at.
@shared_task(
    name="dicomnode.tasks.delivery_send_task",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=330,
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def delivery_send_task(delivery_id: int) -> str:
    sent = delivery.delivery_send(delivery_id=delivery_id)
    return sent.state if sent is not None else "nothing to do"


@shared_task(name="dicomnode.tasks.delivery_sweep_task", ignore_result=True)
def delivery_sweep_task() -> int:
    return delivery.deliveries_sweep()


@shared_task(
    name="dicomnode.tasks.alert_send_task",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=60,
    time_limit=90,
    # A channel that failed is not an error of the task: the service records it
    # and enqueues the next attempt with backoff (alerts.ALERT_RETRY_SECONDS).
    autoretry_for=INFRASTRUCTURE_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def alert_send_task(alert_id: int) -> str:
    sent = alerts.alert_send(alert_id=alert_id)
    return sent.state if sent is not None else "nothing to do"


@shared_task(name="dicomnode.tasks.alert_sweep_task", ignore_result=True)
def alert_sweep_task() -> int:
    return alerts.alerts_sweep()


# --- end of results back and alerts ---------------------------------------------
