"""The audit trail's one writer. Every app calls `audit_record` for every read or
download of patient data, and for every change to who may do what.

Each entry carries `entry_hash`, the sha256 of a canonical serialisation of its fields
and of `prev_hash`, the previous entry's hash (GENESIS for the first). Changing an
entry breaks its own hash; deleting one breaks the next entry's `prev_hash`;
`manage.py audit_verify` walks the chain."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

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


GENESIS = "0" * 64
HASHED_FIELDS = (
    "timestamp",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "ip_address",
    "user_agent",
    "path",
    "detail",
    "prev_hash",
)
# Any constant: every writer takes the same transaction-level lock.
_CHAIN_LOCK = 0x5354524B_41554454  # "STRKAUDT"


def _canonical_json(value: Any) -> Any:
    """JSON as it comes back from either database: PostgreSQL's jsonb turns 1e16 into
    10000000000000000 and -0.0 into 0.0, so integral floats count as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_json(v) for k, v in value.items()}
    return value


def _canonical_ip(value: str | None) -> str | None:
    # PostgreSQL's inet spells IPv6 addresses its own way.
    try:
        return ipaddress.ip_address(value).compressed if value else None
    except ValueError:
        return value


def entry_hash(fields: Mapping[str, Any]) -> str:
    """The sha256 (hex) of one entry, from its HASHED_FIELDS as written or as read
    back from the database (both give the same text)."""
    timestamp: datetime = fields["timestamp"]
    canonical = {
        **{name: fields[name] for name in HASHED_FIELDS},
        "timestamp": timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "ip_address": _canonical_ip(fields["ip_address"]),
        # Round-trip first, as the database does: tuples become lists, keys text.
        "detail": _canonical_json(json.loads(json.dumps(fields["detail"]))),
        "v": 1,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _chain_append(entry: AuditEntry) -> AuditEntry:
    """Insert `entry` after the last one. The lock is held until the surrounding
    transaction commits, so two writers never chain to the same entry (SQLite
    serialises writers already: transactions begin IMMEDIATE). Call audit_record last
    in a transaction: the lock waits for other audit writers to commit."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK])
        last = AuditEntry.objects.order_by("-id").values_list("entry_hash", flat=True)
        previous = last.first()
        entry.prev_hash = GENESIS if previous is None else previous
        entry.entry_hash = entry_hash(vars(entry))
        entry.save(force_insert=True)
    return entry


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address as the login throttle sees it (proxy-aware)."""
    if request is None:
        return None
    from axes.helpers import get_client_ip_address

    return get_client_ip_address(request) or None


@dataclass(frozen=True)
class AuditContext:
    """Where an action came from, as its audit entry records it: what a service
    needs of an HTTP request, so that services take this small value and know
    nothing of HTTP. `AuditContext.of(request)` in a view; `AuditContext()` for
    work no request started (a worker, a management command)."""

    user: User | None = None
    ip_address: str | None = None
    user_agent: str = ""
    path: str = ""

    @classmethod
    def of(cls, request: HttpRequest | None) -> AuditContext:
        if request is None:
            return cls()
        user = getattr(request, "user", None)
        return cls(
            user=user if user is not None and user.is_authenticated else None,
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
            path=request.get_full_path()[:300],
        )


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    context: AuditContext | None = None,
    actor: User | None = None,
    actor_username: str = "",
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = AuditOutcome.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. Where it came from is the `context` (a service's) or the
    `request` (a view's); the actor defaults to its user; the object may be given
    as a model instance or as type and id."""
    if not _ACTION_PATTERN.match(action):
        raise ValueError(f"Audit action {action!r} must look like 'app.verb'.")
    if context is None:
        context = AuditContext.of(request)
    if actor is None:
        actor = context.user
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
    entry = AuditEntry(
        timestamp=timezone.now(),
        actor=actor,
        actor_username=(actor.username if actor else actor_username)[:150],
        actor_role=actor.role if actor else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        outcome=outcome,
        ip_address=context.ip_address,
        user_agent=context.user_agent,
        path=context.path,
        detail=detail or {},
    )
    return _chain_append(entry)
