"""The errors that are the infrastructure's, not the work's: the database or the
broker was unreachable or dropped the connection. Work that meets one is retried
(every task's `autoretry_for`); every other error is the work's own and is recorded
with its reason instead (a model or training failure would only fail again).

Services that catch broad exceptions to record a failure re-raise these first, so
that the task sees them and retries: `except INFRASTRUCTURE_ERRORS: raise`."""

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

__all__ = ["INFRASTRUCTURE_ERRORS", "BrokerError"]
