"""The one module that sends feedback work to Celery. Services enqueue through it and
tasks call services, so services never import tasks."""

from __future__ import annotations

# Each function imports the tasks when called: tasks import services, which import us.


def dataset_index_enqueue(*, dataset_id: int) -> None:
    from .tasks import dataset_index_task

    dataset_index_task.delay(dataset_id)


def retraining_job_enqueue(*, job_id: int) -> None:
    from .tasks import retrain_task

    retrain_task.delay(job_id)


def model_check_enqueue(*, version_id: int) -> None:
    from .tasks import model_check_task

    model_check_task.delay(version_id)
