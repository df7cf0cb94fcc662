"""Pages the portal shows when something goes wrong, in the portal's look; and the
API docs page under the portal's Content-Security-Policy."""

import base64
import hashlib
import re
import uuid
from functools import cache

from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache as portal_cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import get_template
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import services
from accounts.audit import Action, AuditContext, audit_record
from accounts.middleware import csp_with, refusal_context
from accounts.models import AuditOutcome
from accounts.permissions import HasRole
from stroke_portal.api import UNREADABLE_REQUEST
from stroke_portal.infrastructure import broker_reachable


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    if request.user.is_authenticated:
        services.refused_access_record(
            audit=AuditContext.of(request),
            reason=services.Refusal.FORBIDDEN,
            **refusal_context(request),
        )
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    if request.path.startswith(("/api/", "/dicomweb/")):
        return JsonResponse({"detail": UNREADABLE_REQUEST}, status=400)
    return render(request, "400.html", {"reason": UNREADABLE_REQUEST}, status=400)


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
    if not _database_reachable():
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def _database_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _cache_reachable() -> bool:
    # The portal's cache turns an unreachable Redis into misses (stroke_portal.cache),
    # so only a value written and read back tells that it is there.
    key = f"readyz:{uuid.uuid4().hex}"
    portal_cache.set(key, "1", 10)
    found = portal_cache.get(key) == "1"
    portal_cache.delete(key)
    return found


@login_not_required
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness for load balancers and monitoring: 503 when the database or the
    broker (which carries every study to the workers) is unreachable. A cache that
    is down is reported but does not fail it: pages work without it. No patient
    data here."""
    checks = {
        "database": _database_reachable(),
        "broker": broker_reachable(),
        "cache": _cache_reachable(),
    }
    ready = checks["database"] and checks["broker"]
    body = {
        "status": "ok" if ready else "error",
        **{name: "ok" if ok else "unreachable" for name, ok in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)


@cache
def _inline_style_hashes(template_name: str) -> str:
    """CSP sources for the <style> blocks of a third-party template, as written in
    its source (static text): they follow the installed version by themselves."""
    source = get_template(template_name).template.source
    blocks = re.findall(r"<style>(.*?)</style>", source, flags=re.DOTALL)
    digests = (hashlib.sha256(b.encode()).digest() for b in blocks)
    return " ".join(f"'sha256-{base64.b64encode(d).decode()}'" for d in digests)


class ApiDocsView(SpectacularSwaggerSplitView):
    """Swagger UI from the sidecar's files. The split view serves its setup script
    as a separate same-origin file (`?script`), so the page needs no inline script;
    its template's one inline <style> block is allowed by hash, on this page only."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        if request.GET.get("script") is None:
            hashes = _inline_style_hashes(self.template_name)
            response["Content-Security-Policy"] = csp_with(style_src=hashes)
        return response


class SchemaApi(SpectacularAPIView):
    """The OpenAPI schema, for any signed-in role, by session or API token: a
    client that reads the schema to call the API has a token, not a session."""

    permission_classes = [HasRole]
