"""Test settings: the real PostgreSQL and Redis when they answer, else SQLite and an
in-memory broker. `TEST_BACKENDS=sqlite` forces the fallback."""

import os
import socket
import tempfile

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20
)
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="stroke-portal-test-"))

from .settings import *  # noqa: F403
from .settings import DATABASES, env


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


_forced = env.str("TEST_BACKENDS", default="auto")
PG_URL = env.str(
    "TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
USE_POSTGRES = _forced != "sqlite" and _answers("127.0.0.1", 5432)
USE_REDIS = _forced != "sqlite" and _answers("127.0.0.1", 6379)

if USE_POSTGRES:
    DATABASES["default"] = env.db_url_config(PG_URL)
    # One test database per run, so that two runs on one machine (a developer's and
    # CI's) do not flush each other's data.
    DATABASES["default"]["TEST"] = {"NAME": f"test_stroke_portal_{os.getpid()}"}
    # Worker threads in tests must not keep connections that block dropping the
    # test database.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }

if USE_REDIS:
    CELERY_BROKER_URL = TEST_REDIS_URL
    CELERY_RESULT_BACKEND = TEST_REDIS_URL
    # Its own Redis database: tests clear the cache, which must not drop the broker's
    # queues.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TEST_REDIS_URL.rsplit("/", 1)[0] + "/13",
            "KEY_PREFIX": f"stroke-portal-test-{os.getpid()}",
        }
    }
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_IGNORE_RESULT = False

TEST_BACKENDS_DESCRIPTION = (
    f"database: {'PostgreSQL ' + PG_URL if USE_POSTGRES else 'SQLite (in memory)'}; "
    f"broker: {'Redis ' + TEST_REDIS_URL if USE_REDIS else 'in-memory'}"
)

# Static files straight from the source folders, as with runserver.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
