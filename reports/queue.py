"""The one module that sends report work to Celery. Services and receivers enqueue
through it and tasks call services, so services never import tasks."""

from __future__ import annotations

import logging

from django.db import transaction

from stroke_portal.infrastructure import BrokerError

logger = logging.getLogger(__name__)


def report_enqueue(*, study_id: int) -> None:
    """Render the study's report in a worker once the current transaction commits (at
    once outside a transaction). Call it when a study becomes ready and when its
    review changes; calling it more often costs one cheap task, which does nothing
    when the report for the study's current state exists already."""
    from .tasks import report_render_task  # tasks import services, which import us

    def send() -> None:
        try:
            # Light work: the default queue, never behind studies in inference.
            report_render_task.apply_async(args=[study_id], queue="default")
        except BrokerError:
            # The review is saved; the report is rendered when it is downloaded.
            logger.warning(
                "Broker unreachable: report of study %s not queued", study_id
            )

    transaction.on_commit(send)
