"""The one module that sends diagnosis work to Celery. Services and the sweeper
enqueue through it and tasks call services, so services never import tasks."""

from __future__ import annotations

import logging

from stroke_portal.infrastructure import BrokerError

logger = logging.getLogger(__name__)


def study_enqueue(*, study_id: int) -> None:
    """Send the study to the inference queue. With the broker down the study is
    stored and stays queued: the sweeper (diagnosis.recovery) sends it once the
    broker answers, so the upload still succeeds instead of answering 500."""
    from .tasks import study_process_task  # tasks import services, which import us

    try:
        study_process_task.delay(study_id)
    except BrokerError:
        logger.warning(
            "Broker unreachable: study %s stays queued until the sweeper sends it",
            study_id,
            exc_info=True,
        )


def series_read_enqueue(*, study_id: int) -> None:
    """Send the ready study's other series to be read for the viewer, if it has any
    not read yet. With the broker down they stay pending: the sweeper sends them."""
    from .services.series import series_pending_exist
    from .tasks import series_read_task

    if not series_pending_exist(study_id=study_id):
        return
    try:
        series_read_task.delay(study_id)
    except BrokerError:
        logger.warning(
            "Broker unreachable: the series of study %s wait for the sweeper",
            study_id,
            exc_info=True,
        )
