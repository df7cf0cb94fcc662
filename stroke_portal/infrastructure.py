"""The errors that are the infrastructure's, not the work's: the database or the
broker was unreachable or dropped the connection. Work that meets one is retried
(every task's `autoretry_for`); every other error is the work's own and is recorded
with its reason instead (a model or training failure would only fail again).

Services that catch broad exceptions to record a failure re-raise these first, so
that the task sees them and retries: `except INFRASTRUCTURE_ERRORS: raise`."""

import logging

from django.db import DatabaseError, InterfaceError
from kombu.exceptions import OperationalError as BrokerError

#: DatabaseError includes a lost connection (OperationalError); InterfaceError (a
#: closed connection) is not a DatabaseError; BrokerError is kombu's "cannot reach
#: the broker".
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseError,
    InterfaceError,
    BrokerError,
)

logger = logging.getLogger(__name__)


def broker_queue_length(task_name: str) -> int | None:
    """Messages waiting in the queue `task_name` is routed to, or None if the broker
    does not answer. Messages a worker has taken but not acknowledged are not
    counted: an empty queue with work still waiting means its message was lost."""
    from stroke_portal.celery import app

    queue = app.amqp.router.route({}, task_name)["queue"].name
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            return connection.default_channel.queue_declare(queue=queue).message_count
    except Exception:  # whatever the transport raises: the next sweep asks again
        logger.warning("Sweep: the broker does not answer", exc_info=True)
        return None


def broker_reachable(*, timeout: float = 1.0) -> bool:
    """Whether the Celery broker accepts a connection within ``timeout`` seconds."""
    from stroke_portal.celery import app

    try:
        with app.connection_for_read(connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # whatever the transport raises when it cannot connect
        logger.warning("Readiness: the broker does not answer", exc_info=True)
        return False


__all__ = [
    "INFRASTRUCTURE_ERRORS",
    "BrokerError",
    "broker_queue_length",
    "broker_reachable",
]
