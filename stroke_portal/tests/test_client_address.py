"""Behind proxies, sign-in throttling and the audit trail see each client's own
address, and a client cannot choose it by writing X-Forwarded-For itself."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry
from accounts.tests.factories import PASSWORD

LOGIN = reverse("accounts:login")
NGINX = "172.18.0.5"  # REMOTE_ADDR of every request that comes through the proxy


def through_proxy(client_address: str, claimed: str = "") -> Client:
    """A browser at `client_address` behind nginx; `claimed` is what the browser
    itself wrote into X-Forwarded-For."""
    forwarded = f"{claimed}, {client_address}" if claimed else client_address
    return Client(REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR=forwarded)


def failed_login_address(client: Client, username: str) -> str:
    client.post(LOGIN, {"username": username, "password": "wrong-password-x"})
    entry = AuditEntry.objects.filter(action="auth.login_failed").first()
    return entry.ip_address


@pytest.mark.django_db
def test_behind_one_proxy_the_audit_records_the_client_not_the_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = through_proxy("10.1.2.3", claimed="203.0.113.9")
    assert failed_login_address(client, "someone") == "10.1.2.3"


@pytest.mark.django_db
def test_behind_two_proxies_the_address_the_outer_proxy_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    client = Client(REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR="10.4.4.4, 10.0.0.1")
    assert failed_login_address(client, "someone") == "10.4.4.4"


@pytest.mark.django_db
def test_without_trusted_proxies_a_forwarded_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    client = Client(REMOTE_ADDR="10.7.7.7", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert failed_login_address(client, "someone") == "10.7.7.7"


@pytest.mark.django_db
def test_a_garbled_forwarded_header_falls_back_to_the_connection(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR="not-an-address")
    assert failed_login_address(client, "someone") == NGINX


def test_behind_the_proxy_a_lockout_stays_with_the_attackers_address(
    settings, radiologist
):
    """Five wrong passwords from one machine lock that machine out of the account;
    the radiologist at another workstation (same proxy) still signs in."""
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = through_proxy("10.66.6.6")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post(LOGIN, {"username": radiologist.username, "password": "nope-x"})
    locked = attacker.post(
        LOGIN, {"username": radiologist.username, "password": PASSWORD}
    )
    assert locked.status_code == 429
    # The attacker cannot shift the lock onto someone else by claiming an address.
    spoofing = through_proxy("10.66.6.6", claimed="10.20.30.40")
    assert (
        spoofing.post(
            LOGIN, {"username": radiologist.username, "password": PASSWORD}
        ).status_code
        == 429
    )
    colleague = through_proxy("10.20.30.40")
    response = colleague.post(
        LOGIN, {"username": radiologist.username, "password": PASSWORD}
    )
    assert response.status_code == 302
