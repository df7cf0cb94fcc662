"""Self-registration, approval and the admins' user-management page, through the
real views."""

import re

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Role, User

from .factories import PASSWORD, UserFactory

NEW_PASSWORD = "a-much-better-passphrase-42"


def register(client, **overrides):
    data = {
        "username": "nina-new",
        "first_name": "Nina",
        "last_name": "Newcomer",
        "email": "nina@hospital.example",
        "department": "Emergency",
        "requested_role": "radiologist",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        **overrides,
    }
    return client.post(reverse("accounts:register"), data)


def sign_in(client, username, password):
    return client.post(
        reverse("accounts:login"), {"username": username, "password": password}
    )


def test_registration_creates_an_inactive_account_and_tells_admins(
    client, admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(client)
    assert response.status_code == 200
    assert "waiting for an administrator" in response.content.decode()
    user = User.objects.get(username="nina-new")
    assert not user.is_active and user.is_pending_approval
    assert user.requested_role == "radiologist"
    assert [m.to for m in mail.outbox] == [[admin.email]]
    assert AuditEntry.objects.filter(action="account.register").count() == 1


def test_registration_validates_the_password(client, db):
    response = register(client, password1="password", password2="password")
    body = response.content.decode()
    assert "too common" in body or "too short" in body
    assert not User.objects.filter(username="nina-new").exists()


def test_registration_cannot_ask_for_admin(client, db):
    response = register(client, requested_role="admin")
    assert "Select a valid choice" in response.content.decode()
    assert not User.objects.exists()


def test_admin_approves_and_the_user_can_sign_in(
    client, as_admin, admin, django_capture_on_commit_callbacks
):
    register(client)
    user = User.objects.get(username="nina-new")
    listing = as_admin.get(reverse("accounts:user-list"), {"status": "pending"})
    assert "nina-new" in listing.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_admin.post(
            reverse("accounts:user-approve", args=[user.pk]),
            {"role": "radiologist"},
            follow=True,
        )
    assert "nina-new can now sign in" in response.content.decode()
    user.refresh_from_db()
    assert user.is_active and user.role == Role.RADIOLOGIST
    assert user.approved_by == admin
    assert mail.outbox[-1].to == ["nina@hospital.example"]
    assert sign_in(Client(), "nina-new", NEW_PASSWORD).status_code == 302


def test_role_change_is_audited_and_takes_effect(as_admin, clinician):
    as_admin.post(
        reverse("accounts:user-set-role", args=[clinician.pk]), {"role": "radiologist"}
    )
    clinician.refresh_from_db()
    assert clinician.role == Role.RADIOLOGIST
    entry = AuditEntry.objects.get(action="user.role_change")
    assert entry.detail == {"from": "clinician", "to": "radiologist"}
    assert entry.object_id == str(clinician.pk)


def test_deactivation_signs_the_user_out_everywhere(as_admin, clinician):
    their_client = Client()
    sign_in(their_client, clinician.username, PASSWORD)
    assert Session.objects.count() >= 1
    as_admin.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    clinician.refresh_from_db()
    assert not clinician.is_active
    assert their_client.get(reverse("home")).status_code == 302
    assert AuditEntry.objects.filter(action="user.deactivate").exists()


def test_reactivation_restores_access(as_admin, clinician):
    as_admin.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    as_admin.post(reverse("accounts:user-reactivate", args=[clinician.pk]))
    clinician.refresh_from_db()
    assert clinician.is_active


def test_the_last_admin_cannot_be_demoted_or_deactivated(as_admin, admin):
    response = as_admin.post(
        reverse("accounts:user-set-role", args=[admin.pk]),
        {"role": "clinician"},
        follow=True,
    )
    assert "last active administrator" in response.content.decode()
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN
    response = as_admin.post(
        reverse("accounts:user-deactivate", args=[admin.pk]), follow=True
    )
    assert "cannot deactivate your own account" in response.content.decode()


def test_password_reset_by_admin_shows_a_temporary_password_once(as_admin, clinician):
    response = as_admin.post(
        reverse("accounts:user-reset-password", args=[clinician.pk]), follow=True
    )
    body = response.content.decode()
    password = re.search(r'user-select-all">(\w+)<', body).group(1)
    again = as_admin.get(reverse("accounts:user-detail", args=[clinician.pk]))
    assert password not in again.content.decode()

    client = Client()
    assert sign_in(client, clinician.username, password).status_code == 302
    forced = client.get(reverse("home"))
    assert forced["Location"] == reverse("accounts:password-change")
    client.post(
        reverse("accounts:password-change"),
        {
            "old_password": password,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert client.get(reverse("home")).status_code == 200
    clinician.refresh_from_db()
    assert not clinician.must_change_password


def test_admin_unlocks_a_locked_account(as_admin, radiologist):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, radiologist.username, "bad-password-y")
    assert sign_in(client, radiologist.username, PASSWORD).status_code == 429
    listing = as_admin.get(reverse("accounts:user-list"), {"status": "locked"})
    assert radiologist.username in listing.content.decode()
    as_admin.post(reverse("accounts:user-unlock", args=[radiologist.pk]))
    assert sign_in(client, radiologist.username, PASSWORD).status_code == 302


def test_user_list_filters_by_role_and_search(as_admin, radiologist, clinician):
    body = as_admin.get(reverse("accounts:user-list"), {"role": "clinician"}).content
    assert clinician.username in body.decode()
    assert radiologist.username not in body.decode()
    body = as_admin.get(reverse("accounts:user-list"), {"q": "rob-rad"}).content
    assert radiologist.username in body.decode()


def test_unknown_role_in_a_form_is_refused_cleanly(as_admin, clinician):
    response = as_admin.post(
        reverse("accounts:user-set-role", args=[clinician.pk]),
        {"role": "god"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Choose one of the listed roles" in response.content.decode()


@pytest.mark.parametrize("persona", ["as_radiologist", "as_clinician"])
def test_non_admins_cannot_manage_users(persona, request, clinician):
    client = request.getfixturevalue(persona)
    response = client.post(reverse("accounts:user-deactivate", args=[clinician.pk]))
    assert response.status_code == 403
    assert "You do not have access to this page" in response.content.decode()
    clinician.refresh_from_db()
    assert clinician.is_active
    assert AuditEntry.objects.filter(action="access.denied").count() == 1


def test_self_service_password_reset_by_email(client, clinician):
    client.post(reverse("accounts:password-reset"), {"email": clinician.email})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert sign_in(Client(), clinician.username, NEW_PASSWORD).status_code == 302
    assert AuditEntry.objects.filter(action="account.password_reset_request").exists()


def test_demo_users_command_prints_passwords_once(db, tmp_path, settings_data_dir):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("demo_users", stdout=out)
    first = out.getvalue()
    found = dict(re.findall(r"(demo-[\w-]+?)\s+(\w{16})", first))
    assert set(found) == {
        "demo-admin",
        "demo-radiologist",
        "demo-radiologist2",
        "demo-clinician",
    }
    for username, password in found.items():
        assert sign_in(Client(), username, password).status_code == 302
    out = StringIO()
    call_command("demo_users", stdout=out)
    assert not any(p in out.getvalue() for p in found.values())
    assert User.objects.get(username="demo-admin").role == Role.ADMIN


@pytest.fixture
def settings_data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


def test_factories_make_distinct_personas(db):
    assert UserFactory().username != UserFactory().username


def test_user_page_shows_field_history_from_auditlog(as_admin, admin, clinician):
    as_admin.post(
        reverse("accounts:user-set-role", args=[clinician.pk]), {"role": "radiologist"}
    )
    body = as_admin.get(reverse("accounts:user-detail", args=[clinician.pk])).content
    assert "role: clinician → radiologist" in body.decode()
    # The account's creation lists what it was created with, not reverse relations.
    changes = body.decode().split('data-testid="field-changes"')[1]
    assert "created: " in changes and "role clinician" in changes
    assert "Review.None" not in changes and "Study.None" not in changes
