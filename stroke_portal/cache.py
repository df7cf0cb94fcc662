"""Redis as the portal's cache, with Redis down treated as an empty cache.

The cache only shares counts and badges between requests for a few seconds. When
Redis restarts or is unreachable, Django's RedisCache raises on every call and every
worklist page answered 500; here a call that cannot reach Redis logs a warning and
behaves as a miss (reads return the default, writes are dropped), so pages are
counted afresh until Redis is back."""

import functools
import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
WARN_EVERY_SECONDS = 60.0


class ResilientRedisCache(RedisCache):
    _last_warning = 0.0

    def _unreachable(self, operation: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - ResilientRedisCache._last_warning >= WARN_EVERY_SECONDS:
            ResilientRedisCache._last_warning = now
            logger.warning(
                "Cache unreachable (%s: %s); working without it", operation, exc
            )


def _miss(method, fallback):
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNREACHABLE as exc:
            self._unreachable(method.__name__, exc)
            return fallback(*args, **kwargs)

    return guarded


def _default_of_get(key, default=None, version=None):
    return default


_FALLBACKS = {
    "get": _default_of_get,
    "get_many": lambda *args, **kwargs: {},
    "has_key": lambda *args, **kwargs: False,
    "set": lambda *args, **kwargs: None,
    "set_many": lambda *args, **kwargs: [],
    # Not stored: get_or_set then returns the value it computed.
    "add": lambda *args, **kwargs: False,
    "touch": lambda *args, **kwargs: False,
    "delete": lambda *args, **kwargs: False,
    "delete_many": lambda *args, **kwargs: None,
    "clear": lambda *args, **kwargs: False,
}
for _name, _fallback in _FALLBACKS.items():
    setattr(ResilientRedisCache, _name, _miss(getattr(RedisCache, _name), _fallback))
