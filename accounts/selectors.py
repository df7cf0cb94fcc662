"""Reads for accounts: user management and the audit trail (admins only)."""

from datetime import date, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from stroke_portal.dates import day_start

from .models import AuditEntry, User


def locked_usernames() -> set[str]:
    """Usernames currently locked out by the login throttle."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    attempts = AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=since
    )
    return set(attempts.values_list("username", flat=True))


def user_list(*, status: str = "", role: str = "", query: str = "") -> QuerySet[User]:
    users = User.objects.all()
    if status == "pending":
        users = users.filter(is_active=False, approved_at__isnull=True)
    elif status == "active":
        users = users.filter(is_active=True)
    elif status == "inactive":
        users = users.filter(is_active=False, approved_at__isnull=False)
    elif status == "locked":
        users = users.filter(username__in=locked_usernames())
    if role:
        users = users.filter(role=role)
    if query:
        users = users.filter(
            Q(username__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        )
    return users.order_by("is_active", "username")


def user_counts() -> dict[str, int]:
    return {
        "pending": User.objects.filter(
            is_active=False, approved_at__isnull=True
        ).count(),
        "active": User.objects.filter(is_active=True).count(),
        "inactive": User.objects.filter(
            is_active=False, approved_at__isnull=False
        ).count(),
        "locked": len(locked_usernames()),
    }


def audit_list(
    *,
    actor: str = "",
    action: str = "",
    outcome: str = "",
    object_type: str = "",
    object_id: str = "",
    ip_address: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    if actor:
        entries = entries.filter(actor_username__icontains=actor)
    if action:
        entries = entries.filter(action__startswith=action)
    if outcome:
        entries = entries.filter(outcome=outcome)
    if object_type:
        entries = entries.filter(object_type=object_type)
    if object_id:
        entries = entries.filter(object_id=object_id)
    if ip_address:
        entries = entries.filter(ip_address=ip_address)
    if date_from:
        entries = entries.filter(timestamp__gte=day_start(date_from))
    if date_to:
        entries = entries.filter(timestamp__lt=day_start(date_to) + timedelta(days=1))
    return entries


def audit_actions() -> list[str]:
    return list(
        AuditEntry.objects.order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )


def user_field_changes(*, user: User):
    """Field-level changes to an account recorded by django-auditlog."""
    from auditlog.models import LogEntry

    return LogEntry.objects.get_for_object(user).select_related("actor")[:50]


def user_history(*, user: User) -> QuerySet[AuditEntry]:
    """What was done to an account and what it did."""
    return AuditEntry.objects.filter(
        Q(object_type="accounts.user", object_id=str(user.pk)) | Q(actor=user)
    )[:50]
