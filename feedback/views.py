"""Pages of the feedback loop: the feedback queue (radiologists and admins); data
sets, retraining jobs, the model registry and the dashboard (admins only)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import AuditContext
from accounts.models import Role
from accounts.permissions import admin_required, role_required
from diagnosis import selectors as study_selectors

from . import charts, selectors, services
from .forms import (
    CaseFilterForm,
    CaseFlagForm,
    CaseRejectForm,
    DatasetForm,
    JobForm,
    ModelUploadForm,
    PromoteForm,
)
from .models import JobStatus, ModelStatus

reader_required = role_required(Role.RADIOLOGIST, Role.ADMIN)


def _errors(request: HttpRequest, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


# --- Feedback cases -----------------------------------------------------------------
@reader_required
def case_list(request: HttpRequest) -> HttpResponse:
    form = CaseFilterForm(request.GET or {"status": "pending"})
    status = form.cleaned_data["status"] if form.is_valid() else "pending"
    cases = selectors.case_list_for_user(user=request.user, status=status)
    return render(
        request,
        "feedback/case_list.html",
        {
            "form": form,
            "status": status,
            "page": Paginator(cases, 25).get_page(request.GET.get("page")),
            "counts": selectors.case_counts(),
            "flag_form": CaseFlagForm(),
            "single_confirmation": settings.FEEDBACK_SINGLE_CONFIRMATION,
        },
    )


@reader_required
@require_POST
def case_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    case = selectors.case_get_for_user(user=request.user, pk=pk)
    try:
        services.feedback_case_confirm(
            case=case, by=request.user, audit=AuditContext.of(request)
        )
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Case {case.pk} confirmed: it will teach the model.")
    return redirect("feedback:case-list")


@reader_required
@require_POST
def case_reject(request: HttpRequest, pk: int) -> HttpResponse:
    case = selectors.case_get_for_user(user=request.user, pk=pk)
    form = CaseRejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the case is rejected.")
        return redirect("feedback:case-list")
    try:
        services.feedback_case_reject(
            case=case,
            by=request.user,
            reason=form.cleaned_data["reason"],
            audit=AuditContext.of(request),
        )
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Case {case.pk} rejected.")
    return redirect("feedback:case-list")


@reader_required
@require_POST
def case_flag(request: HttpRequest) -> HttpResponse:
    """Add a study the AI got right but that was hard to read."""
    form = CaseFlagForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the study number.")
        return redirect("feedback:case-list")
    study = study_selectors.study_get_for_user(
        user=request.user, pk=form.cleaned_data["study"]
    )
    try:
        case = services.feedback_case_flag_hard(
            study=study,
            by=request.user,
            note=form.cleaned_data["note"],
            audit=AuditContext.of(request),
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, f"Study {study.pk} added as feedback case {case.pk}.")
    return redirect("feedback:case-list")


# --- Data sets --------------------------------------------------------------------
@admin_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_register(
                by=request.user, audit=AuditContext.of(request), **form.cleaned_data
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, error)
        else:
            messages.success(request, f"{dataset} is being indexed.")
            return redirect("feedback:dataset-detail", pk=dataset.pk)
    return render(
        request,
        "feedback/dataset_list.html",
        {"datasets": selectors.dataset_list(), "form": form},
        status=400 if form.errors else 200,
    )


@admin_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = selectors.dataset_get(pk=pk)
    return render(request, "feedback/dataset_detail.html", {"dataset": dataset})


# --- Retraining jobs ---------------------------------------------------------------
@admin_required
def job_list(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.retraining_job_start(
                by=request.user, audit=AuditContext.of(request), **form.cleaned_data
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{job} is queued on the training worker.")
            return redirect("feedback:job-detail", pk=job.pk)
    return render(
        request,
        "feedback/job_list.html",
        {
            "page": Paginator(selectors.job_list(), 25).get_page(
                request.GET.get("page")
            ),
            "form": form,
            "counts": selectors.case_counts(),
        },
        status=400 if form.errors else 200,
    )


@admin_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_get(pk=pk)
    candidate = job.candidate
    context = {"job": job, "candidate": candidate, "status": _job_json(job)}
    if candidate is not None:
        context.update(_comparison(candidate))
    return render(request, "feedback/job_detail.html", context)


def _job_json(job) -> dict:
    candidate = job.candidate
    return {
        "status": job.status,
        "status_display": job.get_status_display(),
        "badge": job.badge,
        "note": job.progress_note,
        "started": (
            timezone.localtime(job.started_at).strftime("%Y-%m-%d %H:%M")
            if job.started_at
            else "waiting for the training worker"
        ),
        "epoch": job.epoch,
        "epochs": job.epochs,
        "history": job.history,
        "log": job.log[-20000:],
        "error": job.error_message,
        "cancel_requested": job.cancel_requested,
        "finished": job.status not in (JobStatus.QUEUED, JobStatus.RUNNING),
        "candidate": candidate.pk if candidate else None,
    }


@admin_required
@require_GET
def job_status(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(_job_json(selectors.job_get(pk=pk)))


@admin_required
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_get(pk=pk)
    if services.retraining_job_cancel(
        job=job, by=request.user, audit=AuditContext.of(request)
    ):
        messages.success(request, f"{job} will stop after its current epoch.")
    else:
        messages.error(request, "Only a queued or running job can be cancelled.")
    return redirect("feedback:job-detail", pk=job.pk)


# --- Model registry ----------------------------------------------------------------
@admin_required
def model_list(request: HttpRequest) -> HttpResponse:
    form = ModelUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.model_version_upload(
                archive=form.cleaned_data["archive"],
                by=request.user,
                audit=AuditContext.of(request),
            )
        except ValidationError as error:
            form.add_error("archive", error.messages)
        else:
            messages.success(
                request,
                f"{version} is registered as a candidate; the training worker is "
                "loading and evaluating it.",
            )
            return redirect("feedback:model-detail", pk=version.pk)
    versions = list(selectors.model_version_list())
    return render(
        request,
        "feedback/model_list.html",
        {
            "versions": versions,
            "form": form,
            "rollback": [
                v
                for v in versions
                if v.status == ModelStatus.ACTIVE and v.previous_active_id
            ],
        },
        status=400 if form.errors else 200,
    )


def _comparison(version) -> dict:
    gate = selectors.promotion_gate(candidate=version)
    evaluations = [
        (label, e)
        for label, e in (
            (f"{version} (candidate)", gate.candidate_evaluation),
            (f"{gate.active} (active)", gate.active_evaluation),
        )
        if e is not None
    ]
    return {
        "gate": gate,
        "show_type": version.task == "type",
        "evaluations": evaluations,
        "roc_chart": charts.roc_figure(evaluations),
        "comparison_confusion": charts.confusion_figures(
            [e for _, e in evaluations],
            titles=[label for label, _ in evaluations],
            prefix="side-by-side",
        ),
    }


@admin_required
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = selectors.model_version_get(pk=pk)
    context = {
        "version": version,
        "all_evaluations": selectors.model_evaluations(version=version),
        "promote_form": PromoteForm(),
    }
    if version.status != ModelStatus.ACTIVE:
        context.update(_comparison(version))
    context["confusion_charts"] = charts.confusion_figures(context["all_evaluations"])
    return render(request, "feedback/model_detail.html", context)


@admin_required
@require_POST
def model_promote(request: HttpRequest, pk: int) -> HttpResponse:
    version = selectors.model_version_get(pk=pk)
    form = PromoteForm(request.POST)
    form.is_valid()
    try:
        services.model_version_promote(
            version=version,
            by=request.user,
            override_reason=form.cleaned_data.get("override_reason", ""),
            audit=AuditContext.of(request),
        )
    except ValidationError as error:
        _errors(request, error)
        return redirect("feedback:model-detail", pk=version.pk)
    messages.success(
        request, f"{version} is now active: the next study is analysed with it."
    )
    return redirect("feedback:model-list")


@admin_required
@require_POST
def model_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    current = selectors.model_version_get(pk=pk)
    try:
        target = services.model_version_rollback(
            task=current.task,
            modality=current.modality,
            by=request.user,
            audit=AuditContext.of(request),
        )
    except ValidationError as error:
        _errors(request, error)
    else:
        messages.success(request, f"Rolled back: {target} is active again.")
    return redirect("feedback:model-list")


# --- Dashboard --------------------------------------------------------------------
@admin_required
def dashboard(request: HttpRequest) -> HttpResponse:
    figures = selectors.dashboard_figures()
    return render(
        request,
        "feedback/dashboard.html",
        {
            "figures": figures,
            "roles": selectors.user_role_counts(),
            "cases": selectors.case_counts(),
            "jobs": selectors.job_list()[:5],
            "job_counts": selectors.job_counts(),
            "versions": selectors.model_version_list()[:10],
            "studies_chart": charts.studies_per_day_figure(figures),
        },
    )


@admin_required
@require_GET
def dashboard_figures(request: HttpRequest) -> JsonResponse:
    figures = selectors.dashboard_figures()
    return JsonResponse(
        {"figures": figures, "studies_chart": charts.studies_per_day_figure(figures)}
    )
