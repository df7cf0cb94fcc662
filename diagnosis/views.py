"""Pages for studies: upload, worklist, study page with viewer and review. Every view
that shows patient data writes an audit entry."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import AuditContext, audit_record
from accounts.models import Role
from accounts.permissions import admin_required, any_role_required, role_required

from . import extensions, ml_adapter, selectors, services, viewer
from .forms import ReviewForm, StudyFilterForm, UploadForm
from .models import Sex, StudyStatus
from .templatetags.studies import (
    ai_badge,
    onset_clock,
    reading_badge,
    scan_clock,
    status_badge,
    waiting,
)

reviewer_required = role_required(Role.RADIOLOGIST, Role.ADMIN)


# --- Upload ---------------------------------------------------------------------------
def _upload_json(outcome=None, error=None, status=200) -> JsonResponse:
    if error is not None:
        return JsonResponse(
            {"error": error.message, "rejected": error.rejected}, status=status
        )
    study = outcome.study
    return JsonResponse(
        {
            "study": study.pk,
            "created": outcome.created,
            "url": reverse("diagnosis:study-detail", args=[study.pk]),
            "rejected": outcome.rejected,
            "warnings": outcome.warnings,
        },
        status=status,
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@any_role_required
def study_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method != "POST":
        return render(request, "diagnosis/upload.html", {"form": form})
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse(
                {
                    "error": "The form is not valid.",
                    "fields": form.errors.get_json_data(),
                },
                status=400,
            )
        return render(request, "diagnosis/upload.html", {"form": form}, status=400)
    try:
        outcome = services.study_create(
            user=request.user,
            files=form.cleaned_data["files"],
            clinical=form.clinical(),
            audit=AuditContext.of(request),
        )
    except services.UploadError as error:
        if _wants_json(request):
            return _upload_json(error=error, status=400)
        return render(
            request,
            "diagnosis/upload.html",
            {"form": form, "upload_error": error},
            status=400,
        )
    if _wants_json(request):
        return _upload_json(outcome, status=201 if outcome.created else 200)
    _upload_messages(request, outcome)
    return redirect("diagnosis:study-detail", pk=outcome.study.pk)


def _upload_messages(request: HttpRequest, outcome) -> None:
    if not outcome.created:
        messages.info(request, "These files were uploaded before: here is that study.")
        return
    count = outcome.study.slice_count
    messages.success(
        request,
        f"Study uploaded with {count} slice{'s' if count != 1 else ''}; the AI "
        "analysis is queued.",
    )
    for item in outcome.rejected:
        messages.warning(request, f"Set aside {item['name']}: {item['reason']}")


# --- Worklist -------------------------------------------------------------------------
WORKLIST_PAGE_SIZE = 25


@any_role_required
def study_list(request: HttpRequest) -> HttpResponse:
    form = StudyFilterForm(request.GET or None)
    filters = form.filters()
    page = rows = None
    if filters is not None:
        user = request.user
        paginator = selectors.CountedPaginator(
            selectors.study_rows_for_user(user=user, **filters),
            WORKLIST_PAGE_SIZE,
            count=lambda: selectors.study_list_count_for_user(user=user, **filters),
        )
        page = paginator.get_page(request.GET.get("page"))
        rows = _worklist_rows(page.object_list)
        audit_record(
            action="study.list",
            request=request,
            detail={"page": page.number, "count": len(rows)},
        )
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("partial", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "query": query.urlencode(),
        "counts": selectors.study_counts_for_user(user=request.user),
        "is_worklist": request.user.role in (Role.RADIOLOGIST, Role.ADMIN),
    }
    if request.GET.get("partial"):
        return render(request, "diagnosis/_study_rows.html", context)
    return render(request, "diagnosis/study_list.html", context)


def _worklist_rows(studies) -> list[dict]:
    """Each row's cells worked out here, once, rather than by a template tag or filter
    per cell: rendering the rows was the largest part of the busiest page."""
    rows = []
    now = timezone.now()  # one "now" for every clock on the page
    for row in studies:
        status = row["status"]
        rows.append(
            {
                **row,
                "url": reverse("diagnosis:study-detail", args=[row["pk"]]),
                "sex": Sex(row["patient_sex"]).label if row["patient_sex"] else "",
                "ai_badge": ai_badge(
                    row["ai_label"],
                    row["ai_stroke_type"],
                    row["ai_probability"],
                    finding=row["ai_finding"],
                    volume_ml=row["ai_volume_ml"],
                    demo=row["ai_demo_model"],
                    outside_scope=row["outside_scope_reason"],
                ),
                "status_badge": status_badge(status, StudyStatus(status).label),
                "reading_badge": reading_badge(
                    row["reading_label"], row["reading_stroke_type"]
                ),
                # The clock stops when the study is read: it measured the wait.
                "waiting": waiting(row["created_at"], until=row["read_at"]),
                "scan_clock": scan_clock(
                    row["acquired_at"],
                    row["last_instance_at"],
                    row["created_at"],
                    row["arrival"],
                    now=now,
                ),
                "onset_clock": onset_clock(row["symptom_onset"], now=now),
            }
        )
    return rows


@any_role_required
@require_GET
def study_list_pulse(request: HttpRequest) -> JsonResponse:
    """A fingerprint of the user's studies (no patient data): the worklist reloads
    its rows only when it changes."""
    studies = selectors.study_list_for_user(user=request.user)
    latest = studies.aggregate(latest=Max("updated_at"))["latest"]
    counts = selectors.study_counts_for_user(user=request.user)
    return JsonResponse(
        {
            "version": f"{latest.isoformat() if latest else ''}"
            f"|{sorted(counts.items())}",
            "counts": counts,
        }
    )


# --- Study page, images, status -----------------------------------------------------
@any_role_required
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    audit_record(action="study.view", request=request, obj=study)
    result = study.current_result
    review = study.current_review
    slices = list(study.slices.all())
    reading = selectors.reading_state(user=request.user, result=result, review=review)
    start = selectors.viewer_start_slice(slices=slices, result=result)
    # The form never holds the AI's answer or another reader's: a reader starts
    # empty, with the AI finding beside the form; only their own reading comes back
    # for them to amend.
    initial = {}
    if reading is not None and reading.mine:
        initial = {
            "final_label": review.final_label,
            "stroke_type": review.stroke_type,
            "impression": review.impression,
            "measurements": review.measurements,
        }
    return render(
        request,
        "diagnosis/study_detail.html",
        {
            "study": study,
            "result": result,
            "review": review,
            "slices": slices,
            "heatmap_slices": [s.index for s in slices if s.heatmap_name],
            "probabilities": [s.probability for s in slices],
            "unread_slices": (
                [s.index for s in slices if s.probability is None] if result else []
            ),
            "reviews": selectors.study_reviews(study=study),
            "reading": reading,
            "analysis_time": selectors.analysis_time_words(study=study),
            "results": selectors.study_results(study=study),
            "explanation": selectors.ai_explanation(result=result),
            "words": selectors.result_words(study=study, result=result),
            "start_slice": start,
            "series": viewer.series_list(study=study),
            "viewer": (
                viewer.viewer_meta(
                    study=study,
                    slices=slices,
                    result=result,
                    start=start,
                    measurements=review.measurements if initial else [],
                )
                if study.status == StudyStatus.READY and slices
                else None
            ),
            "review_form": ReviewForm(initial=initial),
            "can_review": request.user.role in (Role.RADIOLOGIST, Role.ADMIN),
            "can_reprocess": request.user.role == Role.ADMIN
            and study.status in (StudyStatus.READY, StudyStatus.FAILED),
            "windows": ml_adapter.VIEWER_WINDOWS,
            **extensions.study_page_parts(user=request.user, study=study),
        },
    )


@any_role_required
@require_GET
def study_status(request: HttpRequest, pk: int) -> JsonResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    return JsonResponse(
        {
            "status": study.status,
            "status_display": study.get_status_display(),
            "done": study.progress_done,
            "total": study.progress_total,
            "error": study.error_message,
        }
    )


def _window_from(request: HttpRequest) -> tuple[float, float] | None:
    name = request.GET.get("window", "brain")
    if name in ml_adapter.VIEWER_WINDOWS:
        return ml_adapter.VIEWER_WINDOWS[name]
    try:
        center, width = float(request.GET["c"]), float(request.GET["w"])
    except (KeyError, ValueError):
        raise Http404("Unknown window.") from None
    if not (-2000 <= center <= 4000 and 1 <= width <= 8000):
        raise Http404("Window out of range.")
    return center, width


@any_role_required
@require_GET
def slice_image(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    png = selectors.slice_png(study=study, index=index, window=_window_from(request))
    audit_record(
        action="study.image_view", request=request, obj=study, detail={"slice": index}
    )
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=600"
    return response


@any_role_required
@require_GET
def slice_data(request: HttpRequest, pk: int) -> HttpResponse:
    """Slices as int16 for the viewer (diagnosis/viewer.py); ?start=&count=, and
    ?series= for a series other than the analysed one (0)."""
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    try:
        start, count = int(request.GET["start"]), int(request.GET.get("count", 1))
    except (KeyError, ValueError):
        return _plain(400, "Give the first slice as ?start=N (and ?count=M).")
    series = _series_from(request)
    if series is None:
        return _plain(
            400,
            "Give the series as ?series=N: 0 for the analysed series, or the "
            "number the viewer lists for another.",
        )
    try:
        data, sent = viewer.slice_data(
            study=study, start=start, count=count, series=series
        )
    except viewer.NoSuchSeries as missing:
        return _plain(404, str(missing))
    etag = f'"{viewer.volume_version(study=study, series=series)}-{start}-{count}"'
    detail = {"slices": [start, start + sent - 1]}
    audit_record(
        action="study.slice_data_view",
        request=request,
        obj=study,
        detail=detail | ({"series": series} if series else {}),
    )
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["X-Slice-Start"], response["X-Slice-Count"] = str(start), str(sent)
    response["Cache-Control"] = "private, max-age=3600"
    response["ETag"] = etag
    return response


def _series_from(request: HttpRequest) -> int | None:
    """?series= as a series index (0, the analysed one, when absent); None when it
    is not one."""
    value = request.GET.get("series", "0")
    if not value.isascii() or not value.isdigit() or len(value) > 4:
        return None
    return int(value)


def _plain(status: int, message: str) -> HttpResponse:
    return HttpResponse(
        message, status=status, content_type="text/plain; charset=utf-8"
    )


@any_role_required
@require_GET
def heatmap_image(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    path = selectors.overlay_path(study=study, index=index)
    audit_record(
        action="study.heatmap_view", request=request, obj=study, detail={"slice": index}
    )
    response = FileResponse(open(path, "rb"), content_type="image/png")  # noqa: SIM115
    response["Cache-Control"] = "private, max-age=600"
    return response


# --- Review and reprocessing ----------------------------------------------------------
@reviewer_required
@require_POST
def study_review(request: HttpRequest, pk: int) -> HttpResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    data = request.POST.copy()
    result = study.current_result
    if "agree" in data and result is not None:
        data["final_label"], data["stroke_type"] = result.as_reading()
    form = ReviewForm(data)
    if not form.is_valid():
        messages.error(request, "The review was not saved: choose the final finding.")
        return redirect("diagnosis:study-detail", pk=study.pk)
    try:
        services.review_submit(
            study=study,
            reviewer=request.user,
            audit=AuditContext.of(request),
            **form.cleaned_data,
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Review saved.")
    return redirect("diagnosis:study-detail", pk=study.pk)


@admin_required
@require_POST
def study_reprocess(request: HttpRequest, pk: int) -> HttpResponse:
    study = selectors.study_get_for_user(user=request.user, pk=pk)
    if services.study_reprocess(
        study=study, by=request.user, audit=AuditContext.of(request)
    ):
        messages.success(request, "The study is queued for analysis again.")
    else:
        messages.error(request, "Only a ready or failed study can be reprocessed.")
    return redirect("diagnosis:study-detail", pk=study.pk)
