"""Writes to accounts. Every change to who may do what is audited here."""

import secrets
import string

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from .audit import Action, AuditContext, audit_record
from .models import AuditEntry, AuditOutcome, Role, Site, User
from .selectors import NotVisible

SELF_SERVICE_ROLES = (Role.RADIOLOGIST, Role.CLINICIAN)
# The audit action: accounts.audit.Action names only those of accounts.audit itself.
REVOKE_ACTION = "user.token_revoke"


class Refusal:
    """Why an access was refused, as the audit entry's `detail.reason` says it."""

    NOT_VISIBLE = "not visible"  # the object exists but is not the user's to see
    NOT_FOUND = "not found"  # no such object: probing ids
    FORBIDDEN = "forbidden"  # the user's role may not open this page or endpoint
    UNAUTHENTICATED = "unauthenticated"  # API call without a valid token or session


def _notify(*, recipients: list[str], subject: str, body: str) -> None:
    recipients = [r for r in recipients if r]
    if recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


@transaction.atomic
def user_register(
    *,
    username: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    department: str = "",
    requested_role: str,
    audit: AuditContext | None = None,
) -> User:
    """Create an inactive account that an admin must approve."""
    if requested_role not in SELF_SERVICE_ROLES:
        raise ValidationError({"requested_role": "Choose radiologist or clinician."})
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        department=department,
        role=requested_role,
        requested_role=requested_role,
        is_active=False,
    )
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    audit_record(
        action=Action.REGISTER,
        context=audit,
        actor_username=username,
        obj=user,
        detail={"requested_role": requested_role},
    )
    admins = User.objects.filter(role=Role.ADMIN, is_active=True)
    transaction.on_commit(
        lambda: _notify(
            recipients=[a.email for a in admins],
            subject=f"{settings.PORTAL_NAME}: account awaiting approval",
            body=f"{user.get_full_name() or username} ({email}) asked for a "
            f"{user.get_role_display().lower()} account. Approve or refuse it under "
            "Users in the portal.",
        )
    )
    return user


def _ensure_other_admin_remains(*, user: User) -> None:
    others = User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk)
    if user.role == Role.ADMIN and not others.exists():
        raise ValidationError(
            "This is the last active administrator; make another user an "
            "administrator first."
        )


def _set_role(user: User, role: str) -> None:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    user.role = role
    # The Django admin site is for portal administrators only.
    user.is_staff = role == Role.ADMIN
    user.is_superuser = role == Role.ADMIN


@transaction.atomic
def user_approve(
    *, user: User, role: str, by: User, audit: AuditContext | None = None
) -> User:
    if user.is_active:
        raise ValidationError(f"{user.username} is already active.")
    _set_role(user, role)
    user.is_active = True
    user.approved_at = timezone.now()
    user.approved_by = by
    user.save()
    audit_record(
        action=Action.USER_APPROVE, context=audit, obj=user, detail={"role": role}
    )
    transaction.on_commit(
        lambda: _notify(
            recipients=[user.email],
            subject=f"{settings.PORTAL_NAME}: your account is active",
            body=f"Your {user.get_role_display().lower()} account {user.username} has "
            "been approved. You can sign in now.",
        )
    )
    return user


@transaction.atomic
def user_set_role(
    *, user: User, role: str, by: User, audit: AuditContext | None = None
) -> User:
    if role == user.role:
        return user
    if role != Role.ADMIN:
        _ensure_other_admin_remains(user=user)
    old = user.role
    _set_role(user, role)
    user.save()
    audit_record(
        action=Action.USER_ROLE_CHANGE,
        context=audit,
        obj=user,
        detail={"from": old, "to": role},
    )
    return user


@transaction.atomic
def user_set_site(
    *, user: User, site: Site | None, by: User, audit: AuditContext | None = None
) -> User:
    """Which site's network studies a clinician sees (None: only their uploads)."""
    if site == user.site:
        return user
    old = user.site.name if user.site else ""
    user.site = site
    user.save(update_fields=["site"])
    audit_record(
        action="user.site_change",
        context=audit,
        obj=user,
        detail={"from": old, "to": site.name if site else ""},
    )
    return user


def _end_sessions(user: User) -> None:
    """Sign a user out everywhere (sessions store the user id under _auth_user_id)."""
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()


def refused_access_record(
    *,
    audit: AuditContext,
    reason: str,
    object_type: str = "",
    object_id: str | int = "",
    detail: dict | None = None,
) -> AuditEntry:
    """One `access.denied` entry: who, from where, the object asked for and why it
    was refused. A request for something that does not exist is a failure, every
    other refusal is denied; admins see bursts of either per user."""
    return audit_record(
        action=Action.ACCESS_DENIED,
        context=audit,
        actor_username="anonymous" if audit.user is None else "",
        object_type=object_type,
        object_id=object_id,
        outcome=(
            AuditOutcome.FAILURE if reason == Refusal.NOT_FOUND else AuditOutcome.DENIED
        ),
        detail={"reason": reason, **(detail or {})},
    )


def refused_read_record(
    *, audit: AuditContext, refusal: NotVisible, detail: dict | None = None
) -> AuditEntry:
    """The entry for a scoped selector's refusal: the object asked for, and whether
    it exists at all."""
    return refused_access_record(
        audit=audit,
        reason=Refusal.NOT_VISIBLE if refusal.exists else Refusal.NOT_FOUND,
        object_type=refusal.object_type,
        object_id=refusal.object_id,
        detail=detail,
    )


def user_tokens_revoke(
    *, user: User, reason: str, audit: AuditContext | None = None
) -> int:
    """Delete the user's API tokens, so that a deactivated or locked-out account's
    token stops working at once and stays dead after a reactivation (a new one must
    be asked for with the password). Audited when there was one; returns how many."""
    count, _ = Token.objects.filter(user=user).delete()
    if count:
        signed_in = audit is not None and audit.user is not None
        audit_record(
            action=REVOKE_ACTION,
            context=audit,
            # A lockout revokes on behalf of no one: the request is an anonymous
            # sign-in attempt.
            actor_username="" if signed_in else "system",
            obj=user,
            detail={"reason": reason, "tokens": count},
        )
    return count


def user_locked_out(*, username: str, audit: AuditContext | None) -> int:
    """The login throttle locked this username out (at one address): whoever is
    guessing its password may also hold its API token, so the token goes too. An
    unknown username has none."""
    user = User.objects.filter(username=username).first() if username else None
    if user is None:
        return 0
    return user_tokens_revoke(user=user, reason="locked out", audit=audit)


@transaction.atomic
def user_deactivate(*, user: User, by: User, audit: AuditContext | None = None) -> User:
    if user.pk == by.pk:
        raise ValidationError("You cannot deactivate your own account.")
    if not user.is_active:
        raise ValidationError(f"{user.username} is already inactive.")
    _ensure_other_admin_remains(user=user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    _end_sessions(user)
    audit_record(action=Action.USER_DEACTIVATE, context=audit, obj=user)
    user_tokens_revoke(user=user, reason="deactivated", audit=audit)
    return user


@transaction.atomic
def user_reactivate(*, user: User, by: User, audit: AuditContext | None = None) -> User:
    if user.is_active:
        raise ValidationError(f"{user.username} is already active.")
    if user.approved_at is None:
        raise ValidationError("Approve a new registration instead of reactivating it.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_record(action=Action.USER_REACTIVATE, context=audit, obj=user)
    return user


def temporary_password_generate(length: int = 14) -> str:
    """Random password of letters and digits, with at least one of each."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


@transaction.atomic
def user_reset_password(
    *, user: User, by: User, audit: AuditContext | None = None
) -> str:
    """Give the user a temporary password, shown once to the admin; the user must
    choose a new one at the next sign-in. Unlocks the account too."""
    password = temporary_password_generate()
    user.set_password(password)
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password"])
    _end_sessions(user)
    axes_reset(username=user.username)
    audit_record(action=Action.USER_PASSWORD_RESET, context=audit, obj=user)
    # Like the sessions: whoever had the old password may have asked for a token.
    user_tokens_revoke(user=user, reason="password reset", audit=audit)
    return password


def user_unlock(*, user: User, by: User, audit: AuditContext | None = None) -> int:
    """Lift a login lockout; returns how many throttling records were cleared."""
    cleared = axes_reset(username=user.username)
    audit_record(
        action=Action.USER_UNLOCK,
        context=audit,
        obj=user,
        detail={"cleared_attempts": cleared},
    )
    return cleared


def user_password_changed(*, user: User, audit: AuditContext | None = None) -> None:
    if user.must_change_password:
        user.must_change_password = False
        user.save(update_fields=["must_change_password"])
    audit_record(action=Action.PASSWORD_CHANGE, context=audit, obj=user)


DEMO_USERS = (
    ("demo-admin", Role.ADMIN, "Ada", "Admin"),
    ("demo-radiologist", Role.RADIOLOGIST, "Rita", "Radiologist"),
    # A second reader: feedback cases need a radiologist other than the one who
    # disagreed with the AI to confirm them.
    ("demo-radiologist2", Role.RADIOLOGIST, "Raj", "Reader"),
    ("demo-clinician", Role.CLINICIAN, "Carl", "Clinician"),
)


@transaction.atomic
def demo_users_ensure() -> list[tuple[str, str, str | None]]:
    """Create the demo accounts that do not exist yet.

    Returns (username, role, password) for each; the password is None for an
    account that already existed (its password is not known any more).
    """
    created = []
    for username, role, first, last in DEMO_USERS:
        if User.objects.filter(username=username).exists():
            created.append((username, role, None))
            continue
        password = temporary_password_generate(16)
        user = User(
            username=username,
            first_name=first,
            last_name=last,
            email=f"{username}@example.org",
            approved_at=timezone.now(),
        )
        _set_role(user, role)
        user.set_password(password)
        user.save()
        audit_record(
            action=Action.USER_CREATE,
            actor_username="system",
            obj=user,
            detail={"demo": True, "role": role},
        )
        created.append((username, role, password))
    return created


def sessions_clear_expired() -> int:
    """Delete expired sessions; returns how many were removed."""
    expired = Session.objects.filter(expire_date__lt=timezone.now())
    count, _ = expired.delete()
    return count
