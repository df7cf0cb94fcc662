"""Walks every URL pattern the project resolves.

- Every non-public page redirects an anonymous user to the login page.
- Every page declares the roles that may open it (`role_required`), and answers 403 to
  the other roles; a page added without such a declaration makes this test fail.
- Every API view declares its roles through `HasRole` and answers 401/403 to anonymous
  callers and 403 to the other roles.
- The Django admin site is closed to everyone but portal administrators.
"""

from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from accounts.models import Role
from accounts.permissions import HasRole

PUBLIC = {
    "accounts:login",
    "accounts:register",
    "accounts:password-reset",
    "accounts:password-reset-done",
    "accounts:password-reset-confirm",
    "accounts:password-reset-complete",
    "api:token-create",
    "healthz",
    "readyz",
}
SAMPLE_VALUES = ("1", "accounts", "x")


@dataclass
class Route:
    name: str
    namespace: str
    callback: object
    kwargs: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}:{self.name}" if self.namespace else self.name


def walk(patterns, namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            if entry.namespace and namespace:
                ns = f"{namespace}:{entry.namespace}"
            yield from walk(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern):
            kwargs = tuple(entry.pattern.regex.groupindex)
            yield Route(entry.name or "", namespace, entry.callback, kwargs)


ROUTES = list(walk(get_resolver().url_patterns))


def url_for(route: Route, pk: int) -> str | None:
    for value in (str(pk), *SAMPLE_VALUES):
        try:
            return reverse(route.qualified, kwargs=dict.fromkeys(route.kwargs, value))
        except NoReverseMatch:
            continue
    return None


def declared_roles(callback) -> frozenset[str] | None:
    roles = getattr(callback, "allowed_roles", None)
    view_class = getattr(callback, "view_class", None)
    if roles is None and view_class is not None:
        roles = getattr(view_class.dispatch, "allowed_roles", None)
    return roles


def api_roles(callback) -> tuple[str, ...] | None:
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        return None
    for permission in view_class.permission_classes:
        if isinstance(permission, type) and issubclass(permission, HasRole):
            return permission.roles
    return None


def is_admin_site(route: Route) -> bool:
    return route.namespace == "admin" or route.namespace.startswith("admin:")


# API views outside /api/v1/: the OpenAPI schema answers API tokens (401, not a
# redirect to the login page, for the anonymous).
APIS_OUTSIDE_NAMESPACE = {"schema"}
# DRF views under other prefixes: DICOMweb (/dicomweb/) answers tokens the same way.
API_NAMESPACES = {"api", "dicomweb"}


def is_api(route: Route) -> bool:
    return (
        route.namespace in API_NAMESPACES or route.qualified in APIS_OUTSIDE_NAMESPACE
    )


PAGES = [r for r in ROUTES if not is_admin_site(r) and not is_api(r)]
PROTECTED_PAGES = [r for r in PAGES if r.qualified not in PUBLIC]
APIS = [r for r in ROUTES if is_api(r) and r.qualified not in PUBLIC]
ADMIN_SITE = [
    r for r in ROUTES if is_admin_site(r) and r.name not in {"login", "logout"}
]


def test_walk_finds_the_known_pages():
    names = {r.qualified for r in ROUTES}
    assert {"home", "accounts:user-list", "accounts:audit-list", "api:me"} <= names
    assert len(ADMIN_SITE) > 10


def test_every_page_is_named():
    unnamed = [r for r in ROUTES if not r.name and not is_admin_site(r)]
    assert not unnamed, "every portal URL needs a name so it can be checked"


@pytest.mark.parametrize("route", PROTECTED_PAGES, ids=lambda r: r.qualified)
def test_page_declares_roles(route):
    assert declared_roles(route.callback), (
        f"{route.qualified} does not declare who may open it: wrap the view in "
        "accounts.permissions.role_required(...)"
    )


@pytest.mark.parametrize("route", PROTECTED_PAGES, ids=lambda r: r.qualified)
def test_page_sends_anonymous_users_to_login(route, client, admin):
    url = url_for(route, admin.pk)
    response = client.get(url)
    assert response.status_code == 302, f"{url} answered {response.status_code}"
    assert urlparse(response["Location"]).path == reverse(settings.LOGIN_URL)


@pytest.mark.parametrize("route", PROTECTED_PAGES, ids=lambda r: r.qualified)
def test_page_refuses_other_roles(route, personas):
    roles = declared_roles(route.callback) or frozenset()
    for role, user in personas.items():
        client = _client(user)
        status = client.get(url_for(route, user.pk)).status_code
        if role in roles:
            assert status != 403, f"{role} is refused {route.qualified}"
        else:
            assert status == 403, f"{role} got {status} on {route.qualified}"


@pytest.mark.parametrize("route", APIS, ids=lambda r: r.qualified)
def test_api_declares_roles_and_refuses_others(route, client, personas):
    roles = api_roles(route.callback)
    assert roles, f"{route.qualified} must use accounts.permissions.HasRole.of(...)"
    url = url_for(route, 1)
    assert client.get(url).status_code in (401, 403)
    for role, user in personas.items():
        status = _client(user).get(url).status_code
        assert (status != 403) if role in roles else (status == 403), (role, status)


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.qualified in PUBLIC], ids=lambda r: r.qualified
)
def test_public_pages_open_without_login(route, client, db):
    response = client.get(url_for(route, 1))
    assert response.status_code in (200, 405)


def test_admin_site_is_for_admins_only(client, personas):
    for route in ADMIN_SITE[:40]:
        url = url_for(route, personas["admin"].pk)
        if url is None:
            continue
        assert client.get(url).status_code == 302, url
        for role in (Role.RADIOLOGIST, Role.CLINICIAN):
            assert _client(personas[role]).get(url).status_code == 302, (role, url)
    assert _client(personas["admin"]).get(reverse("admin:index")).status_code == 200


def _client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
