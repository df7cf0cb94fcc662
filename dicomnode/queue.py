"""The one module that sends dicomnode work to Celery (the only importer of
dicomnode/tasks.py). Services enqueue through it; beat also sends
incoming_complete_task by name (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

# --- Receive (issue 16) ------------------------------------------------------------


def incoming_complete_send() -> None:
    """Ask a worker to complete the collections that have gone quiet (what beat
    does every few seconds; for tests and a manual nudge)."""
    from .tasks import incoming_complete_task  # tasks import services

    incoming_complete_task.delay()
