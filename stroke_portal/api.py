"""API error handling: every error is JSON with a readable message, never a trace."""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
        exc = exceptions.ValidationError(detail)
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
