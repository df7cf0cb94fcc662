"""Shared fixtures: the personas every test module uses."""

import pytest
from django.conf import settings


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
