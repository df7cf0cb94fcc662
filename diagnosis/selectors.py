"""Reads for diagnosis. Every read is scoped to a user: clinicians see the studies
they uploaded; radiologists and admins see all."""

from datetime import date, datetime, time, timedelta

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.http import Http404
from django.utils import timezone

from accounts.models import Role, User

from .models import AIResult, Review, Study, StudyStatus


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


def _annotated(studies: QuerySet[Study]) -> QuerySet[Study]:
    current_review = Review.objects.filter(study=OuterRef("pk"), is_current=True)
    current_result = AIResult.objects.filter(study=OuterRef("pk"), is_current=True)
    return studies.annotate(
        reviewed=Exists(current_review),
        ai_label=current_result.values("label")[:1],
        ai_stroke_type=current_result.values("stroke_type")[:1],
        ai_confidence=current_result.values("confidence")[:1],
        ai_probability=current_result.values("probability")[:1],
    )


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


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
    studies = _annotated(_visible(user)).select_related("uploaded_by")
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
        studies = studies.filter(created_at__gte=_day_start(date_from))
    if date_to:
        studies = studies.filter(created_at__lt=_day_start(date_to) + timedelta(days=1))
    if patient_id:
        studies = studies.filter(patient_id__icontains=patient_id.strip())
    bucket = Case(
        When(Q(status=StudyStatus.READY, reviewed=False), then=Value(0)),
        When(status__in=[StudyStatus.QUEUED, StudyStatus.PROCESSING], then=Value(1)),
        When(status=StudyStatus.FAILED, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    return studies.annotate(bucket=bucket).order_by("bucket", "-priority", "created_at")


def study_counts_for_user(*, user: User) -> dict[str, int]:
    studies = _annotated(_visible(user))
    counts = dict(
        studies.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    counts["to_review"] = studies.filter(
        status=StudyStatus.READY, reviewed=False
    ).count()
    return {s: counts.get(s, 0) for s in [*StudyStatus.values, "to_review"]}


def study_reviews(*, study: Study) -> QuerySet[Review]:
    return study.reviews.select_related("reviewer").order_by("-created_at")


def study_results(*, study: Study) -> QuerySet[AIResult]:
    return study.results.select_related("model_version").order_by("-created_at")
