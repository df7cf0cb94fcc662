"""The study page's actions from dicomnode: an admin's "Send again" of failed
deliveries, and a reader's acknowledgement of the study's alerts. Thin: the study
scoped to the user (404 for one they may not see, audited as a refused read), one
service, back to the study page."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.audit import AuditContext
from accounts.models import Role
from accounts.permissions import admin_required, role_required
from diagnosis.selectors import study_get_for_user

from . import alerts, delivery


@admin_required
@require_POST
def delivery_resend(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_get_for_user(user=request.user, pk=pk)
    count = delivery.deliveries_resend(study=study, context=AuditContext.of(request))
    if count:
        messages.success(
            request,
            f"{count} failed deliver{'ies' if count != 1 else 'y'} queued to be "
            "sent again.",
        )
    else:
        messages.info(request, "No failed deliveries to send again.")
    return redirect("diagnosis:study-detail", pk=study.pk)


@role_required(Role.RADIOLOGIST, Role.ADMIN)
@require_POST
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    study = study_get_for_user(user=request.user, pk=pk)
    count = alerts.alerts_acknowledge(
        study=study, user=request.user, context=AuditContext.of(request)
    )
    if count:
        messages.success(request, "Alert acknowledged.")
    else:
        messages.info(request, "This study has no alert to acknowledge.")
    return redirect("diagnosis:study-detail", pk=study.pk)
