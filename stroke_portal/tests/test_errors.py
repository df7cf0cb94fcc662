"""Error pages in the portal's look, JSON errors on the API, never a stack trace."""

import pytest
from django.test import Client
from django.urls import path, reverse
from rest_framework.decorators import api_view, permission_classes

from accounts.permissions import HasRole, any_role_required
from stroke_portal import urls as project_urls


@any_role_required
def broken_page(request):
    raise RuntimeError("secret internals: /etc/passwd")


@api_view(["GET"])
@permission_classes([HasRole])
def broken_api(request):
    raise RuntimeError("secret internals: /etc/passwd")


urlpatterns = [
    *project_urls.urlpatterns,
    path("broken/", broken_page, name="broken"),
    path("api/broken/", broken_api, name="broken-api"),
]
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@pytest.fixture
def broken_urls(settings):
    settings.ROOT_URLCONF = __name__


def test_404_page_has_the_portal_look(as_clinician):
    response = as_clinician.get("/no/such/page/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in body and "navbar" in body


def test_500_page_hides_the_error(broken_urls, clinician):
    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    response = client.get("/broken/")
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_api_error_is_json_without_a_trace(broken_urls, clinician):
    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    response = client.get("/api/broken/")
    assert response.status_code == 500
    assert "has been logged" in response.json()["detail"]
    assert "secret internals" not in response.content.decode()


def test_api_me_with_a_token(client, radiologist):
    response = client.post(
        reverse("api:token-create"),
        {"username": radiologist.username, "password": "correct-horse-battery-staple"},
    )
    token = response.json()["token"]
    me = client.get(reverse("api:me"), HTTP_AUTHORIZATION=f"Token {token}")
    assert me.json()["role"] == "radiologist"


def test_api_token_with_a_wrong_password_is_refused_clearly(client, radiologist):
    response = client.post(
        reverse("api:token-create"),
        {"username": radiologist.username, "password": "nope"},
    )
    assert response.status_code == 400
    assert "Unable to log in" in str(response.json())


def test_anonymous_api_call_gets_json_401_or_403(client, db):
    response = client.get(reverse("api:me"))
    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_healthz_reports_the_database(client, db):
    assert client.get(reverse("healthz")).json() == {"status": "ok"}


def test_a_locked_out_account_gets_429_from_the_token_api_even_with_its_password(
    client, radiologist, settings
):
    url = reverse("api:token-create")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": radiologist.username, "password": "nope"})
    response = client.post(
        url,
        {"username": radiologist.username, "password": "correct-horse-battery-staple"},
    )
    assert response.status_code == 429
    assert "locked" in response.json()["detail"]
    assert response.json()["locked_for_minutes"] > 0
