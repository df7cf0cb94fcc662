"""Signing in and out through the real login page: messages, lockout, audit."""

import time

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.middleware import LAST_ACTIVITY_KEY
from accounts.models import AuditEntry

from .factories import PASSWORD

LOGIN = reverse("accounts:login")


def sign_in(client, username, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def actions(**filters):
    return list(AuditEntry.objects.filter(**filters).values_list("action", flat=True))


def test_login_success_lands_on_home_and_is_audited(client, radiologist):
    response = sign_in(client, radiologist.username, HTTP_USER_AGENT="pytest-browser")
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    entry = AuditEntry.objects.get(action="auth.login")
    assert entry.actor == radiologist
    assert entry.actor_role == "radiologist"
    assert entry.ip_address == "127.0.0.1"
    assert entry.user_agent == "pytest-browser"
    home = client.get(reverse("home"))
    assert "Signed in as <strong>radiologist</strong>" in home.content.decode()


def test_wrong_password_says_so_and_is_audited(client, radiologist):
    response = sign_in(client, radiologist.username, "not-the-password")
    assert response.status_code == 200
    assert "The username or password is not right" in response.content.decode()
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.actor_username == radiologist.username
    assert entry.outcome == "failure"


def test_unknown_user_gets_the_same_message(client, db):
    response = sign_in(client, "nobody-here", "whatever-password")
    assert "The username or password is not right" in response.content.decode()
    assert actions(actor_username="nobody-here") == ["auth.login_failed"]


def test_account_awaiting_approval_is_told_so(client, inactive_user):
    response = sign_in(client, inactive_user.username)
    body = response.content.decode()
    assert "waiting for an administrator" in body
    assert "_auth_user_id" not in client.session
    assert actions(actor_username=inactive_user.username) == ["auth.login_inactive"]


def test_deactivated_account_is_told_so(client, clinician, admin):
    clinician.is_active = False
    clinician.save()
    response = sign_in(client, clinician.username)
    assert "has been deactivated" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_wrong_password_for_inactive_account_reveals_nothing(client, inactive_user):
    response = sign_in(client, inactive_user.username, "wrong-password-here")
    body = response.content.decode()
    assert "The username or password is not right" in body
    assert "waiting for" not in body


def test_five_failures_lock_the_account_with_a_clear_message(client, radiologist):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, radiologist.username, "bad-password-x")
    response = sign_in(client, radiologist.username)  # right password, still locked
    body = response.content.decode()
    assert response.status_code == 429
    assert "Sign-in is locked" in body
    assert f"{settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in body
    assert "_auth_user_id" not in client.session
    assert "auth.lockout" in actions(actor_username=radiologist.username)
    assert "auth.login_blocked" in actions(actor_username=radiologist.username)


def test_lockout_is_per_account_and_address(client, radiologist, clinician):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, radiologist.username, "bad-password-x")
    assert sign_in(client, clinician.username).status_code == 302
    other_address = Client(REMOTE_ADDR="10.1.2.3")
    assert sign_in(other_address, radiologist.username).status_code == 302


def test_logout_is_audited_and_ends_the_session(client, clinician):
    sign_in(client, clinician.username)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302
    assert "auth.logout" in actions(actor=clinician)


def test_idle_session_expires_with_a_message(client, clinician):
    sign_in(client, clinician.username)
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - settings.SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    response = client.get(reverse("home"), follow=True)
    assert response.redirect_chain[0][0].startswith(LOGIN)
    assert "minutes without activity" in response.content.decode()
    assert "auth.session_expired" in actions(actor=clinician)


def test_active_session_is_kept(client, clinician):
    sign_in(client, clinician.username)
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 60
    session.save()
    assert client.get(reverse("home")).status_code == 200


def test_tampered_csrf_token_gets_a_clear_page_and_an_audit_entry(radiologist):
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    response = client.post(
        LOGIN,
        {
            "username": radiologist.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": "x" * 64,
        },
    )
    assert response.status_code == 403
    assert "This form could not be accepted" in response.content.decode()
    assert actions(action="auth.csrf_failed") == ["auth.csrf_failed"]


def test_session_cookie_is_httponly_and_samesite(client, clinician):
    response = sign_in(client, clinician.username)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize("role", ["admin", "radiologist", "clinician"])
def test_each_role_sees_its_navigation(role, personas):
    client = Client()
    client.force_login(personas[role])
    body = client.get(reverse("home")).content.decode()
    has_admin_pages = reverse("accounts:user-list") in body
    assert has_admin_pages == (role == "admin")
    assert (reverse("accounts:audit-list") in body) == (role == "admin")


def test_logout_link_opened_directly_asks_to_confirm(as_clinician):
    response = as_clinician.get(reverse("accounts:logout"))
    assert response.status_code == 200
    assert "Sign out?" in response.content.decode()
    assert as_clinician.get(reverse("home")).status_code == 200
