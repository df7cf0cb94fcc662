"""The audit trail's one writer. Every app calls `audit_record` for every read or
download of patient data, and for every change to who may do what."""

import re
from typing import Any

from django.db import models
from django.http import HttpRequest

from .models import AuditEntry, AuditOutcome, User

_ACTION_PATTERN = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


class Action:
    """Action names used by accounts; other apps define their own `<app>.<verb>`."""

    LOGIN = "auth.login"
    LOGOUT = "auth.logout"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN_BLOCKED = "auth.login_blocked"
    LOGIN_INACTIVE = "auth.login_inactive"
    LOCKOUT = "auth.lockout"
    SESSION_EXPIRED = "auth.session_expired"
    CSRF_FAILED = "auth.csrf_failed"
    ACCESS_DENIED = "access.denied"
    REGISTER = "account.register"
    PASSWORD_CHANGE = "account.password_change"
    PASSWORD_RESET_REQUEST = "account.password_reset_request"
    PASSWORD_RESET_DONE = "account.password_reset_complete"
    USER_APPROVE = "user.approve"
    USER_DEACTIVATE = "user.deactivate"
    USER_REACTIVATE = "user.reactivate"
    USER_ROLE_CHANGE = "user.role_change"
    USER_PASSWORD_RESET = "user.password_reset"
    USER_UNLOCK = "user.unlock"
    USER_CREATE = "user.create"
    USER_VIEW = "user.view"
    AUDIT_VIEW = "audit.view"
    AUDIT_EXPORT = "audit.export"


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address as the login throttle sees it (proxy-aware)."""
    if request is None:
        return None
    from axes.helpers import get_client_ip_address

    return get_client_ip_address(request) or None


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    actor: User | None = None,
    actor_username: str = "",
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = AuditOutcome.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. The actor defaults to the request's user; the object may be
    given as a model instance or as type and id."""
    if not _ACTION_PATTERN.match(action):
        raise ValueError(f"Audit action {action!r} must look like 'app.verb'.")
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    return AuditEntry.objects.create(
        actor=actor,
        actor_username=(actor.username if actor else actor_username)[:150],
        actor_role=actor.role if actor else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        outcome=outcome,
        ip_address=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request else "")[:300],
        path=(request.get_full_path() if request else "")[:300],
        detail=detail or {},
    )
