"""dicomnode's Celery tasks: thin, primary keys in, one service called, safe twice.
Only dicomnode/queue.py imports this module."""

from celery import shared_task

from . import ingest

# --- Receive (issue 16) ------------------------------------------------------------


@shared_task(name="dicomnode.tasks.incoming_complete_task", ignore_result=True)
def incoming_complete_task() -> list[int]:
    """Beat, every few seconds: the listener completes quiet collections itself
    about a second after their quiet time; this is the backup for when it is down
    or busy. Claims are guarded UPDATEs, so both running at once is harmless."""
    return ingest.incoming_complete_quiet()
