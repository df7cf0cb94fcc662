import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse

from . import services
from .audit import AuditContext
from .selectors import NotVisible

LAST_ACTIVITY_KEY = "last_activity"
# Writing the session on every request costs a database write per page, image and
# poll; a minute's resolution is plenty for a 30-minute idle timeout.
ACTIVITY_RESOLUTION_SECONDS = 60


class IdleTimeoutMiddleware:
    """Sign a user out after SESSION_IDLE_MINUTES without a request, and say why on
    the login page (the session cookie alone would expire silently)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = time.time()
            last = request.session.get(LAST_ACTIVITY_KEY)
            if last is not None and now - last > settings.SESSION_IDLE_MINUTES * 60:
                request.idle_logout = True
                logout(request)
                messages.info(
                    request,
                    f"You were signed out after {settings.SESSION_IDLE_MINUTES} "
                    "minutes without activity. Please sign in again.",
                )
                return redirect(f"{reverse(settings.LOGIN_URL)}?next={request.path}")
            if last is None or now - last >= ACTIVITY_RESOLUTION_SECONDS:
                request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)


class PasswordChangeRequiredMiddleware:
    """After an admin reset, the user must choose a new password before anything
    else."""

    allowed = ("accounts:password-change", "accounts:logout")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and user.must_change_password:
            allowed_paths = {reverse(name) for name in self.allowed}
            if request.path not in allowed_paths and not request.path.startswith(
                settings.STATIC_URL
                if settings.STATIC_URL.startswith("/")
                else "/" + settings.STATIC_URL
            ):
                messages.warning(request, "Choose a new password to continue.")
                return redirect("accounts:password-change")
        return self.get_response(request)


class NoStoreMiddleware:
    """Patient data must not stay in a browser's or a proxy's cache: every response
    the portal builds (pages, API, downloads) says ``Cache-Control: no-store`` unless
    its view chose a policy of its own (slice images: private, for the viewer's
    scrolling). Static files are served before this runs and keep theirs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store, private"
        return response


def refusal_context(request) -> dict:
    """The view asked for and the id in its URL, for a refusal's audit entry."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {"object_id": "", "detail": {}}
    return {
        "object_id": match.kwargs.get("pk", ""),
        "detail": {"view": match.view_name},
    }


class RefusedReadAuditMiddleware:
    """Audits a page's refused read: a scoped selector's NotVisible (a study that is
    not the user's, or not there at all) becomes a plain 404 for the user and one
    `access.denied` entry naming the object asked for. A 403 is audited by the 403
    handler (stroke_portal.views.permission_denied), the API's refusals by its
    exception handler; a 404 of a URL that names nothing is not audited."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, NotVisible):
            services.refused_read_record(
                audit=AuditContext.of(request),
                refusal=exception,
                detail=refusal_context(request)["detail"],
            )
        return None  # Django answers the 404 as usual


class ContentSecurityPolicyMiddleware:
    """A strict Content-Security-Policy (settings.CONTENT_SECURITY_POLICY) on every
    response the portal builds: the portal serves its own scripts, so no inline
    script, no other origin, no frames. A view that needs more sets its own header,
    built with `csp_with` (the API docs page allows its one inline style by hash)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY and not response.has_header(
            "Content-Security-Policy"
        ):
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        return response


def csp_with(**extra: str) -> str:
    """The portal's policy with sources added to some directives, e.g.
    `csp_with(style_src="'sha256-...'")` (a directive it lacks starts from
    default-src)."""
    policy = {}
    for part in settings.CONTENT_SECURITY_POLICY.split(";"):
        if part.strip():
            name, *sources = part.split()
            policy[name] = sources
    for key, sources in extra.items():
        name = key.replace("_", "-")
        policy[name] = [*policy.get(name, policy.get("default-src", [])), sources]
    return "; ".join(" ".join([name, *sources]) for name, sources in policy.items())
