"""Pages the portal shows when something goes wrong, in the portal's look."""

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import services
from accounts.audit import Action, audit_record
from accounts.middleware import refusal_context
from accounts.models import AuditOutcome


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    if request.user.is_authenticated:
        services.refused_access_record(
            request=request,
            reason=services.Refusal.FORBIDDEN,
            **refusal_context(request),
        )
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    # A study that is not the user's was audited where it was refused
    # (accounts.middleware.RefusedReadAuditMiddleware); other 404s name nothing.
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors: whatever broke must not break this page too.
    return render(request, "500.html", status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    audit_record(
        action=Action.CSRF_FAILED,
        request=request,
        actor_username="" if request.user.is_authenticated else "anonymous",
        outcome=AuditOutcome.DENIED,
        detail={"reason": reason},
    )
    return render(request, "403_csrf.html", status=403)


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and docker-compose: no patient data here."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
