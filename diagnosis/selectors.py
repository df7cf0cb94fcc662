"""Reads for diagnosis. Every read is scoped to a user: clinicians see the studies
they uploaded; radiologists and admins see all."""

from datetime import date, timedelta

from django.core.cache import cache
from django.db.models import (
    Count,
    QuerySet,
)
from django.http import Http404

from accounts.models import Role, User
from stroke_portal.dates import day_start

from .models import AIResult, Review, Study, StudyStatus, WorklistBucket


def _visible(user: User) -> QuerySet[Study]:
    studies = Study.objects.all()
    if not (user.is_authenticated and user.is_active):
        return studies.none()
    if user.role in (Role.RADIOLOGIST, Role.ADMIN):
        return studies
    return studies.filter(uploaded_by=user)


def study_get_for_user(*, user: User, pk: int) -> Study:
    """The study, or 404 when it does not exist or is not the user's to see."""
    study = _visible(user).select_related("uploaded_by").filter(pk=pk).first()
    if study is None:
        raise Http404("No such study.")
    return study


def study_list_for_user(
    *,
    user: User,
    status: str = "",
    ai_label: str = "",
    stroke_type: str = "",
    modality: str = "",
    reviewed: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    patient_id: str = "",
) -> QuerySet[Study]:
    """Worklist order: ready and unreviewed first by AI priority, then by waiting
    time; then studies still being processed, failed ones, and reviewed ones."""
    studies = _visible(user).select_related("uploaded_by")
    if status:
        studies = studies.filter(status=status)
    if ai_label:
        studies = studies.filter(ai_label=ai_label)
    if stroke_type:
        studies = studies.filter(ai_stroke_type=stroke_type)
    if modality:
        studies = studies.filter(modality=modality)
    if reviewed in ("yes", "no"):
        studies = studies.filter(reviewed=reviewed == "yes")
    if date_from:
        studies = studies.filter(created_at__gte=day_start(date_from))
    if date_to:
        studies = studies.filter(created_at__lt=day_start(date_to) + timedelta(days=1))
    if patient_id:
        studies = studies.filter(patient_id__icontains=patient_id.strip())
    return studies.order_by("bucket", "-priority", "created_at")


COUNTS_CACHE_SECONDS = 3


def study_counts_for_user(*, user: User) -> dict[str, int]:
    """Studies per state in the user's scope. Every worklist page and poll shows
    them, so they are shared for a few seconds (per scope) rather than recounted."""
    scope = "all" if user.role in (Role.RADIOLOGIST, Role.ADMIN) else f"user-{user.pk}"
    return cache.get_or_set(
        f"study-counts:{scope}", lambda: _study_counts(user), COUNTS_CACHE_SECONDS
    )


def _study_counts(user: User) -> dict[str, int]:
    studies = _visible(user)
    counts = dict(studies.order_by().values_list("status").annotate(n=Count("pk")))
    counts["to_review"] = studies.filter(bucket=WorklistBucket.TO_REVIEW).count()
    return {s: counts.get(s, 0) for s in [*StudyStatus.values, "to_review"]}


def study_reviews(*, study: Study) -> QuerySet[Review]:
    return study.reviews.select_related("reviewer").order_by("-created_at")


def study_results(*, study: Study) -> QuerySet[AIResult]:
    return study.results.select_related("model_version").order_by("-created_at")
