"""Audit entries for authentication events, and what a lockout revokes. Each receiver
calls the audit or the accounts service."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.dispatch import receiver

from . import services
from .audit import Action, AuditContext, audit_record
from .models import AuditOutcome


@receiver(user_logged_in, dispatch_uid="audit-login")
def audit_login(sender, request, user, **kwargs):
    audit_record(action=Action.LOGIN, request=request, actor=user)


@receiver(user_logged_out, dispatch_uid="audit-logout")
def audit_logout(sender, request, user, **kwargs):
    if user is None:
        return
    expired = getattr(request, "idle_logout", False)
    audit_record(
        action=Action.SESSION_EXPIRED if expired else Action.LOGOUT,
        request=request,
        actor=user,
    )


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    blocked = getattr(request, "axes_locked_out", False)
    audit_record(
        action=Action.LOGIN_BLOCKED if blocked else Action.LOGIN_FAILED,
        request=request,
        actor_username=str(credentials.get("username", ""))[:150],
        outcome=AuditOutcome.DENIED if blocked else AuditOutcome.FAILURE,
    )


@receiver(user_locked_out, dispatch_uid="audit-lockout")
def audit_lockout(sender, request, username, ip_address, **kwargs):
    audit_record(
        action=Action.LOCKOUT,
        request=request,
        actor_username=username or "",
        outcome=AuditOutcome.DENIED,
        detail={"ip_address": ip_address},
    )


@receiver(user_locked_out, dispatch_uid="revoke-tokens-on-lockout")
def revoke_tokens_on_lockout(sender, request, username, **kwargs):
    services.user_locked_out(username=username or "", audit=AuditContext.of(request))
