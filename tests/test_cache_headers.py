"""Patient data is not kept in browser or proxy caches: pages, API answers and
downloads say Cache-Control: no-store, unless a view chose its own policy."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory


@pytest.mark.django_db
def test_pages_and_the_api_are_not_stored_by_caches(client):
    user = UserFactory(role="clinician")
    client.force_login(user)
    for url in (reverse("diagnosis:study-list"), "/api/v1/studies/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url
    assert "no-store" in client.get(reverse("accounts:login"))["Cache-Control"]
