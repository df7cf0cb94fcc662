import csv
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from . import selectors, services
from .audit import Action, AuditContext, audit_record
from .forms import (
    AuditFilterForm,
    LoginForm,
    RegistrationForm,
    RoleForm,
    SiteForm,
    UserFilterForm,
)
from .models import AuditOutcome, User
from .navigation import role_home_sections
from .permissions import admin_required, any_role_required


# --- Signing in and out -------------------------------------------------------------
@method_decorator(login_not_required, name="dispatch")
class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


def lockout_response(request, original_response=None, credentials=None):
    """Called by django-axes when an account/address pair is locked out."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {
        "form": LoginForm(request),
        "locked_out": True,
        "cooloff_minutes": minutes,
    }
    return render(request, "registration/login.html", context, status=429)


@method_decorator(any_role_required, name="dispatch")
class LogoutView(auth_views.LogoutView):
    """Signing out is a POST; a GET (a typed or bookmarked URL) asks to confirm."""

    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        return render(request, "registration/logout_confirm.html")


@login_not_required
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.user_register(
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                department=data.get("department", ""),
                requested_role=data["requested_role"],
                audit=AuditContext.of(request),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return render(
                request,
                "registration/register_done.html",
                {"user_name": data["username"]},
            )
    return render(request, "registration/register.html", {"form": form})


@method_decorator(any_role_required, name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_password_changed(
            user=self.request.user, audit=AuditContext.of(self.request)
        )
        messages.success(self.request, "Your password has been changed.")
        return response


@method_decorator(login_not_required, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")

    def form_valid(self, form):
        # The entry records the address asked for, never whether an account has it.
        audit_record(
            action=Action.PASSWORD_RESET_REQUEST,
            request=self.request,
            detail={"email": form.cleaned_data["email"]},
        )
        return super().form_valid(form)


@method_decorator(login_not_required, name="dispatch")
class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"


@method_decorator(login_not_required, name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_password_changed(
            user=form.user, audit=AuditContext.of(self.request)
        )
        return response


@method_decorator(login_not_required, name="dispatch")
class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"


# --- Home ---------------------------------------------------------------------------
@any_role_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"sections": role_home_sections(request.user)})


# --- User management (admins) -------------------------------------------------------
@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    form = UserFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    users = selectors.user_list(
        status=filters.get("status", ""),
        role=filters.get("role", ""),
        query=filters.get("q", ""),
    )
    page = Paginator(users, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/user_list.html",
        {
            "form": form,
            "page": page,
            "counts": selectors.user_counts(),
            "query": query.urlencode(),
            "locked": selectors.locked_usernames(),
        },
    )


@admin_required
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(User, pk=pk)
    audit_record(action=Action.USER_VIEW, request=request, obj=user)
    return render(
        request,
        "accounts/user_detail.html",
        {
            "subject": user,
            "approve_form": RoleForm(
                initial={"role": user.requested_role or user.role}
            ),
            "role_form": RoleForm(initial={"role": user.role}),
            "site_form": SiteForm(initial={"site": user.site_id}),
            "is_locked": user.username in selectors.locked_usernames(),
            "history": selectors.user_history(user=user),
            "field_changes": selectors.user_field_changes(user=user),
            "temporary_password": request.session.pop("temporary_password", None),
        },
    )


def _user_action(request: HttpRequest, pk: int, action, success: str) -> HttpResponse:
    """Run one user-management service and return to the user's page with the
    outcome as a message; a refused change is shown, never raised."""
    user = get_object_or_404(User, pk=pk)
    try:
        action(user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, success.format(user=user.username))
    return redirect("accounts:user-detail", pk=user.pk)


def _user_role_action(request: HttpRequest, pk: int, service, success: str):
    """A user-management action that takes the role chosen in the form."""
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("accounts:user-detail", pk=pk)
    role = form.cleaned_data["role"]
    return _user_action(
        request,
        pk,
        lambda u: service(
            user=u, role=role, by=request.user, audit=AuditContext.of(request)
        ),
        success,
    )


@admin_required
@require_POST
def user_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_role_action(
        request, pk, services.user_approve, "{user} can now sign in."
    )


@admin_required
@require_POST
def user_set_role(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_role_action(
        request, pk, services.user_set_role, "The role of {user} has been changed."
    )


@admin_required
@require_POST
def user_set_site(request: HttpRequest, pk: int) -> HttpResponse:
    form = SiteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed sites.")
        return redirect("accounts:user-detail", pk=pk)
    site = form.cleaned_data["site"]
    return _user_action(
        request,
        pk,
        lambda u: services.user_set_site(
            user=u, site=site, by=request.user, audit=AuditContext.of(request)
        ),
        "The site of {user} has been changed.",
    )


@admin_required
@require_POST
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_action(
        request,
        pk,
        lambda u: services.user_deactivate(
            user=u, by=request.user, audit=AuditContext.of(request)
        ),
        "{user} has been deactivated and signed out.",
    )


@admin_required
@require_POST
def user_reactivate(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_action(
        request,
        pk,
        lambda u: services.user_reactivate(
            user=u, by=request.user, audit=AuditContext.of(request)
        ),
        "{user} has been reactivated.",
    )


@admin_required
@require_POST
def user_reset_password(request: HttpRequest, pk: int) -> HttpResponse:
    def reset(user):
        password = services.user_reset_password(
            user=user, by=request.user, audit=AuditContext.of(request)
        )
        # Shown once on the next page, then gone from the session.
        request.session["temporary_password"] = password

    return _user_action(
        request,
        pk,
        reset,
        "{user} has a temporary password and must choose a new one at sign-in.",
    )


@admin_required
@require_POST
def user_unlock(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_action(
        request,
        pk,
        lambda u: services.user_unlock(
            user=u, by=request.user, audit=AuditContext.of(request)
        ),
        "Sign-in for {user} is unlocked.",
    )


# --- Audit trail (admins) -----------------------------------------------------------
def _audit_entries(request: HttpRequest):
    form = AuditFilterForm(request.GET or None)
    if request.GET and not form.is_valid():
        return form, None
    filters = {
        k: v for k, v in (form.cleaned_data if form.is_bound else {}).items() if v
    }
    return form, selectors.audit_list(**filters)


@admin_required
def audit_list(request: HttpRequest) -> HttpResponse:
    form, entries = _audit_entries(request)
    page = (
        Paginator(entries, 50).get_page(request.GET.get("page"))
        if entries is not None
        else None
    )
    audit_record(
        action=Action.AUDIT_VIEW, request=request, detail={"query": request.GET.dict()}
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/audit_list.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "outcomes": AuditOutcome,
            "refused_reads": selectors.refused_reads_by_user(hours=1),
            "refused_reads_threshold": settings.REFUSED_READS_ALERT_THRESHOLD,
            "refused_action": Action.ACCESS_DENIED,
        },
    )


class _Echo:
    def write(self, value):
        return value


AUDIT_CSV_COLUMNS = (
    "timestamp",
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
)


@admin_required
def audit_export(request: HttpRequest) -> HttpResponse:
    _form, entries = _audit_entries(request)
    if entries is None:
        messages.error(request, "The filters are not valid; nothing was exported.")
        return redirect("accounts:audit-list")
    audit_record(
        action=Action.AUDIT_EXPORT,
        request=request,
        detail={"query": request.GET.dict()},
    )
    writer = csv.writer(_Echo())
    rows = (
        [_csv_cell(getattr(e, c)) for c in AUDIT_CSV_COLUMNS]
        for e in entries.iterator()
    )
    stream = (writer.writerow(row) for row in _with_header(rows))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return StreamingHttpResponse(
        stream,
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


def _csv_cell(value) -> str:
    """Text for a CSV cell. Usernames and user agents come from strangers: a cell
    that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, dict):
        text = json.dumps(value, sort_keys=True)
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _with_header(rows):
    yield list(AUDIT_CSV_COLUMNS)
    yield from rows
