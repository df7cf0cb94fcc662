"""API error handling: every error is JSON with a readable message, never a trace;
every refused access to patient data is audited."""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts import services
from accounts.audit import AuditContext
from accounts.selectors import NotVisible

logger = logging.getLogger(__name__)

#: Said for a request Django could not parse (a multipart body whose part headers
#: are over its limit, usually a file name thousands of characters long, or a
#: malformed body): the user learns what to change, not Django's bare "Bad Request".
UNREADABLE_REQUEST = (
    "The request could not be read: a file name or form field was longer than the "
    "portal accepts (file names of a few hundred characters are fine), or the "
    "upload was damaged on the way. Rename the files and send them again."
)

_FORBIDDEN = (PermissionDenied, exceptions.PermissionDenied)
_UNAUTHENTICATED = (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)


def exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, exceptions.ParseError) and "Multipart" in str(exc.detail):
        exc = exceptions.ParseError(UNREADABLE_REQUEST)
    _audit_refusal(exc, context)
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, Http404 | PermissionDenied):  # pragma: no cover - DRF maps these
        return None
    logger.exception("Unhandled API error", exc_info=exc)
    return Response(
        {"detail": "The server could not complete this request. It has been logged."},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _audit_refusal(exc, context) -> None:
    """One `access.denied` entry for a scoped selector's 404 (with the object asked
    for), a role's 403 or a call without valid credentials (with the URL's id and
    the view's `audit_object_type`). A 404 that names no object is not audited."""
    request, view = context.get("request"), context.get("view")
    if request is None:
        return
    kwargs = context.get("kwargs") or {}
    match = getattr(request, "resolver_match", None)
    detail = {"api": True, "view": match.view_name if match else ""}
    if isinstance(exc, NotVisible):
        services.refused_read_record(
            audit=AuditContext.of(request), refusal=exc, detail=detail
        )
    elif isinstance(exc, _FORBIDDEN + _UNAUTHENTICATED):
        object_type = getattr(view, "audit_object_type", "") if "pk" in kwargs else ""
        services.refused_access_record(
            audit=AuditContext.of(request),
            reason=(
                services.Refusal.FORBIDDEN
                if isinstance(exc, _FORBIDDEN)
                else services.Refusal.UNAUTHENTICATED
            ),
            object_type=object_type,
            object_id=kwargs.get("pk", ""),
            detail={**detail, "error": str(exc)[:200]},
        )
