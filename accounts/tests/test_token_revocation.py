"""Deactivating or locking an account revokes its API tokens: the next API call with
the old token answers 401, reactivating the account does not bring the token back,
and the trail says whose token went and why."""

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import services
from accounts.audit import AuditContext
from accounts.models import AuditEntry
from accounts.tests.factories import PASSWORD


@pytest.fixture
def token(clinician):
    return Token.objects.create(user=clinician).key


def api_me(key: str) -> int:
    client = APIClient()
    return client.get(reverse("api:me"), HTTP_AUTHORIZATION=f"Token {key}").status_code


def revocations(user):
    return AuditEntry.objects.filter(
        action="user.token_revoke", object_id=str(user.pk)
    ).order_by("pk")


def test_deactivating_on_the_users_page_revokes_the_token(
    as_admin, admin, clinician, token
):
    assert api_me(token) == 200
    response = as_admin.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    assert response.status_code == 302
    assert api_me(token) == 401
    assert not Token.objects.filter(user=clinician).exists()
    [entry] = revocations(clinician)
    assert (entry.actor, entry.detail) == (
        admin,
        {"reason": "deactivated", "tokens": 1},
    )

    # Back again: the old token stays dead; a new one needs the password.
    as_admin.post(reverse("accounts:user-reactivate", args=[clinician.pk]))
    assert api_me(token) == 401
    new = APIClient().post(
        reverse("api:token-create"),
        {"username": clinician.username, "password": PASSWORD},
    )
    assert new.status_code == 200 and new.json()["token"] != token
    assert api_me(new.json()["token"]) == 200


def test_a_lockout_revokes_the_token(client, clinician, token):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("accounts:login"),
            {"username": clinician.username, "password": "wrong-password"},
        )
    assert api_me(token) == 401
    [entry] = revocations(clinician)
    assert (entry.actor, entry.actor_username) == (None, "system")
    assert entry.detail == {"reason": "locked out", "tokens": 1}


def test_a_lockout_through_the_token_api_revokes_the_token(clinician, token):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("api:token-create"),
            {"username": clinician.username, "password": "wrong-password"},
        )
    assert api_me(token) == 401
    assert revocations(clinician).count() == 1


def test_an_admin_password_reset_revokes_the_token(as_admin, clinician, token):
    as_admin.post(reverse("accounts:user-reset-password", args=[clinician.pk]))
    assert api_me(token) == 401
    assert revocations(clinician)[0].detail["reason"] == "password reset"


def test_the_revoked_tokens_call_is_audited_as_a_refusal(as_admin, clinician, token):
    as_admin.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    assert api_me(token) == 401
    entry = AuditEntry.objects.filter(action="access.denied").get()
    assert (entry.actor_username, entry.detail["reason"]) == (
        "anonymous",
        "unauthenticated",
    )


def test_an_account_without_a_token_leaves_no_revocation_entry(admin, radiologist, rf):
    request = rf.post("/")
    request.user = admin
    services.user_deactivate(user=radiologist, by=admin, audit=AuditContext.of(request))
    assert not revocations(radiologist).exists()


def test_a_lockout_of_an_unknown_username_revokes_nothing(db):
    assert services.user_locked_out(username="nobody-here", audit=None) == 0


def test_an_account_made_inactive_elsewhere_has_its_token_refused(clinician, token):
    """The Django admin site's "active" box does not go through the service: the
    token stays in the table, but DRF refuses it for an inactive account."""
    clinician.is_active = False
    clinician.save(update_fields=["is_active"])
    assert api_me(token) == 401
