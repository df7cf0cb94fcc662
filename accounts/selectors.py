"""Reads for accounts: user management and the audit trail (admins only)."""

from datetime import date, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from stroke_portal.dates import day_start

from .audit import Action
from .models import AuditEntry, User


class NotVisible(Http404):
    """What a scoped selector raises when the object asked for does not exist or is
    not the user's to see. The user gets the same plain 404 either way (a probe
    learns nothing); the refusal is audited with the object asked for, once, where
    the 404 is answered (accounts.middleware.RefusedReadAuditMiddleware for pages,
    stroke_portal.api.exception_handler for the API)."""

    def __init__(
        self, message: str, *, object_type: str, object_id: str | int, exists: bool
    ):
        super().__init__(message)
        self.object_type = object_type
        self.object_id = str(object_id)
        self.exists = exists


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


def user_field_changes(*, user: User):
    """Field-level changes to an account recorded by django-auditlog."""
    from auditlog.models import LogEntry

    return LogEntry.objects.get_for_object(user).select_related("actor")[:50]


def user_history(*, user: User) -> QuerySet[AuditEntry]:
    """What was done to an account and what it did."""
    return AuditEntry.objects.filter(
        Q(object_type="accounts.user", object_id=str(user.pk)) | Q(actor=user)
    )[:50]


def refused_reads_by_user(*, hours: int = 1) -> list[dict]:
    """Refused accesses (403s and 404s of objects not the user's, or not there) in
    the last `hours`, per user, most first: a burst from one account is a colleague
    probing ids or a stolen login. Each row is flagged when it passes
    REFUSED_READS_ALERT_THRESHOLD."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        AuditEntry.objects.filter(action=Action.ACCESS_DENIED, timestamp__gte=since)
        .order_by()
        .values("actor_username")
        .annotate(
            count=Count("pk"),
            objects=Count("object_id", distinct=True),
            addresses=Count("ip_address", distinct=True),
            last=Max("timestamp"),
        )
        .order_by("-count", "actor_username")
    )
    threshold = settings.REFUSED_READS_ALERT_THRESHOLD
    return [{**row, "alert": row["count"] >= threshold} for row in rows]
