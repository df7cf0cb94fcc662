"""The OpenAPI schema is for API clients: it answers their token, not only a
browser session, and it is still closed to the anonymous."""

from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def test_schema_answers_an_api_token(clinician):
    client = APIClient()
    token = Token.objects.create(user=clinician)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/studies/" in response.json()["paths"]


def test_schema_answers_a_session_too(as_radiologist):
    response = as_radiologist.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200


def test_schema_is_closed_to_the_anonymous(db):
    response = APIClient().get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 401


def test_schema_refuses_a_wrong_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 401
