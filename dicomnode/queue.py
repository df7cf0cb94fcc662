"""The one module that sends dicomnode work to Celery. Services and receivers
enqueue through it and tasks call services, so services never import tasks; beat
also sends incoming_complete_task by name (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from django.db import transaction

from stroke_portal.infrastructure import BrokerError

logger = logging.getLogger(__name__)


# --- Receive (issue 16) ------------------------------------------------------------


def incoming_complete_send() -> None:
    """Ask a worker to complete the collections that have gone quiet (what beat
    does every few seconds; for tests and a manual nudge)."""
    from .tasks import incoming_complete_task  # tasks import services

    incoming_complete_task.delay()


# --- Results back and alerts (deliveries, alerts) -------------------------------
# Light, network-bound work: the default queue, never behind studies in inference.
# A message the broker did not take is not lost: its row stays pending and the
# sweep (dicomnode.tasks.delivery_sweep_task, alert_sweep_task) sends it.
def delivery_enqueue(*, delivery_id: int) -> None:
    """Send one delivery in a worker once the current transaction commits."""
    from .tasks import delivery_send_task  # tasks import services, which import us

    _send_on_commit(delivery_send_task, delivery_id, what="delivery")


def alert_enqueue(*, alert_id: int, countdown: float | None = None) -> None:
    """Send one alert in a worker once the current transaction commits (after
    `countdown` seconds: the backoff of a retry)."""
    from .tasks import alert_send_task

    _send_on_commit(alert_send_task, alert_id, what="alert", countdown=countdown)


def _send_on_commit(task, pk: int, *, what: str, countdown=None) -> None:
    def send() -> None:
        try:
            task.apply_async(args=[pk], queue="default", countdown=countdown)
        except BrokerError:
            logger.warning("Broker unreachable: %s %s left to the sweep", what, pk)

    transaction.on_commit(send)


# --- end of results back and alerts ---------------------------------------------
