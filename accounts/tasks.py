from celery import shared_task

from . import services


@shared_task(name="accounts.tasks.sessions_clear_expired")
def sessions_clear_expired() -> int:
    return services.sessions_clear_expired()
