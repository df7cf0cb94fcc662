"""Shared fixtures: the personas every test module uses."""

import os
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")


def pytest_report_header(config):
    description = getattr(settings, "TEST_BACKENDS_DESCRIPTION", "")
    return [f"stroke-portal test backends: {description}"] if description else []


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (counts and throttles are cached)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def admin(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(username="alice-admin", role="admin")


@pytest.fixture
def radiologist(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(username="rob-radiologist", role="radiologist")


@pytest.fixture
def clinician(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(username="cleo-clinician", role="clinician")


@pytest.fixture
def inactive_user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(
        username="ivan-inactive", role="clinician", is_active=False, approved_at=None
    )


@pytest.fixture
def personas(admin, radiologist, clinician):
    return {"admin": admin, "radiologist": radiologist, "clinician": clinician}


def _client_for(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_admin(admin):
    return _client_for(admin)


@pytest.fixture
def as_radiologist(radiologist):
    return _client_for(radiologist)


@pytest.fixture
def as_clinician(clinician):
    return _client_for(clinician)


def _api_client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api_clinician(clinician):
    return _api_client_for(clinician)


@pytest.fixture
def api_radiologist(radiologist):
    return _api_client_for(radiologist)


@pytest.fixture
def outsider(db):
    """A clinician who uploaded nothing: must get 404 on other people's studies."""
    from accounts.tests.factories import UserFactory

    return UserFactory(username="olga-outsider", role="clinician")


@pytest.fixture
def as_outsider(outsider):
    return _client_for(outsider)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never a browser Playwright downloads),
    one per test module. Modules that use it skip when CHROMIUM is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright runs an event loop in this thread; the live server's database calls
    # happen in its own thread, and the test's own ORM calls are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def worker(transactional_db):
    """A real Celery worker (a thread, the solo pool) on the test broker, taking
    the default and inference queues, for tests that run tasks as production does."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connections

    from stroke_portal.celery import app

    # The worker thread's database connection must close after each task, or the
    # test database cannot be dropped at the end of the run.
    def close_connections(**kwargs):
        connections.close_all()

    task_postrun.connect(close_connections, weak=False)
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=10,
        queues=["default", "inference"],
    ):
        yield
    task_postrun.disconnect(close_connections)


@pytest.fixture
def demo_passwords(transactional_db, settings, tmp_path):
    """The demo accounts `make run` creates, and their passwords, by username."""
    import re
    from io import StringIO

    from django.core.management import call_command

    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("demo_users", stdout=out)
    return dict(re.findall(r"(demo-\w+)\s+(\w{16})", out.getvalue()))
