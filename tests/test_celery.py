"""Work leaves the web process through the configured broker (Redis when it answers,
else in memory) and a real Celery worker runs it."""

from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.tasks import sessions_clear_expired
from stroke_portal.celery import app


@pytest.fixture
def worker(transactional_db):
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
    ):
        yield


def test_broker_is_the_one_the_run_announced():
    expected = "redis://" if settings.USE_REDIS else "memory://"
    assert app.conf.broker_url.startswith(expected)


def test_expired_sessions_are_cleared_by_a_worker(worker):
    stale = SessionStore()
    stale.create()
    Session.objects.filter(session_key=stale.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )
    fresh = SessionStore()
    fresh.create()
    result = sessions_clear_expired.delay()
    assert result.get(timeout=30) == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == [
        fresh.session_key
    ]


def test_beat_schedules_session_cleanup():
    entry = settings.CELERY_BEAT_SCHEDULE["clear-expired-sessions"]
    assert entry["task"] == sessions_clear_expired.name
    assert entry["task"] in app.tasks
