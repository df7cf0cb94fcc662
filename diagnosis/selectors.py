"""Reads for diagnosis. Every read is scoped to a user: clinicians see the studies
they uploaded; radiologists and admins see all."""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import (
    Count,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.http import Http404
from django.utils.functional import cached_property

from accounts.models import Role, User
from accounts.selectors import NotVisible
from stroke_portal.dates import day_start

from . import findings, ml_adapter, storage
from .models import (
    AIResult,
    Arrival,
    Review,
    Slice,
    Study,
    StudyStatus,
    WorklistBucket,
    reading_agrees,
)


def _visible(user: User) -> QuerySet[Study]:
    studies = Study.objects.all()
    if not (user.is_authenticated and user.is_active):
        return studies.none()
    if user.role in (Role.RADIOLOGIST, Role.ADMIN):
        return studies
    # A clinician: what they uploaded, and what their site's scanners and PACS sent.
    mine = Q(uploaded_by=user)
    if user.site_id is not None:
        mine |= Q(site_id=user.site_id)
    return studies.filter(mine)


def study_get_for_user(*, user: User, pk: int) -> Study:
    """The study, or NotVisible (a 404, audited with the id asked for) when it does
    not exist or is not the user's to see."""
    study = _visible(user).select_related("uploaded_by").filter(pk=pk).first()
    if study is None:
        raise NotVisible(
            "No such study.",
            object_type=Study._meta.label_lower,
            object_id=pk,
            exists=Study.objects.filter(pk=pk).exists(),
        )
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


# What a worklist row shows, on the page and in the API. A study row also carries
# DICOM metadata, rejected-file lists and clinical notes: 25 rows of these columns as
# dicts take less than half the CPU of 25 Study instances.
WORKLIST_FIELDS = (
    "pk",
    "status",
    "progress_done",
    "progress_total",
    "patient_id",
    "patient_age",
    "patient_sex",
    "modality",
    "slice_count",
    "study_description",
    "source_kind",
    "uploaded_by__username",
    # Who a network study came from (the worklist says "received from ...").
    "arrival",
    "received_from",
    "site__name",
    "ai_label",
    "ai_stroke_type",
    "ai_confidence",
    "ai_probability",
    "ai_finding",
    "ai_volume_ml",
    "ai_demo_model",
    "outside_scope_reason",
    "reviewed",
    "priority",
    "created_at",
    # The clocks: since the scan (or its arrival) and since symptom onset.
    "arrival",
    "acquired_at",
    "last_instance_at",
    "symptom_onset",
)


def study_rows_for_user(*, user: User, **filters) -> QuerySet:
    """The worklist (same scope, filters and order as `study_list_for_user`) as
    dicts of WORKLIST_FIELDS, with the current reading (``reading_label``,
    ``reading_stroke_type``, ``read_at``) of the studies that have one."""
    current = Review.objects.filter(study=OuterRef("pk"), is_current=True)
    return (
        study_list_for_user(user=user, **filters)
        .annotate(
            reading_label=Subquery(current.values("final_label")[:1]),
            reading_stroke_type=Subquery(current.values("stroke_type")[:1]),
            read_at=Subquery(current.values("created_at")[:1]),
        )
        .values(*WORKLIST_FIELDS, "reading_label", "reading_stroke_type", "read_at")
    )


COUNTS_CACHE_SECONDS = 3


def _scope(user: User) -> str:
    if not (user.is_authenticated and user.is_active):
        return "none"
    if user.role in (Role.RADIOLOGIST, Role.ADMIN):
        return "all"
    return f"user-{user.pk}"


def study_counts_for_user(*, user: User) -> dict[str, int]:
    """Studies per state in the user's scope. Every worklist page and poll shows
    them, so they are shared for a few seconds (per scope) rather than recounted."""
    return cache.get_or_set(
        f"study-counts:{_scope(user)}",
        lambda: _study_counts(user),
        COUNTS_CACHE_SECONDS,
    )


def study_list_count_for_user(*, user: User, **filters) -> int:
    """How many studies these filters match, shared like the count badges: 20
    radiologists refreshing the same worklist need not count 10,000 rows 20 times."""
    digest = hashlib.sha256(repr(sorted(filters.items())).encode()).hexdigest()
    return cache.get_or_set(
        f"study-list-count:{_scope(user)}:{digest}",
        lambda: study_list_for_user(user=user, **filters).count(),
        COUNTS_CACHE_SECONDS,
    )


class CountedPaginator(Paginator):
    """A paginator that asks `count` for the total instead of counting its object
    list (see `study_list_count_for_user`). A shared total may be a few seconds old:
    it only numbers the pages, and a page always holds its full `per_page` rows."""

    def __init__(self, object_list, per_page, *, count: Callable[[], int]):
        super().__init__(object_list, per_page)
        self._count = count

    @cached_property
    def count(self) -> int:
        return self._count()

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(
            self.object_list[bottom : bottom + self.per_page], number, self
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


@dataclass(frozen=True)
class AIExplanation:
    """How the study page and the report name the overlay of an AI result, and what
    its model card says the model looks for and cannot exclude."""

    layer: str  # the viewer's toggle
    caption: str  # what the coloured overlay shows
    looks_for: str = ""
    cannot_exclude: str = ""


GRAD_CAM = AIExplanation(
    layer="Heatmap", caption="heatmap of the regions that drove the AI"
)
LESION_MAP = AIExplanation(
    layer="Lesion map",
    caption="lesion map of the candidate hyperdense regions the model found "
    "(brighter = larger and denser)",
)
SEGMENTATION = AIExplanation(
    layer="Lesion outline",
    caption="outline of the lesion the model segmented (pixels it gives a lesion "
    "probability of {level:.0%} or more)",
)
_EXPLANATIONS = {"lesion_map": LESION_MAP, "segmentation": SEGMENTATION}


def ai_explanation(*, result: AIResult | None) -> AIExplanation:
    """The words for `result`'s overlay, from the card of the model version that
    produced it: a segmenting model outlines the lesion, a lesion-feature model draws
    the candidate lesions it measured, a CNN a Grad-CAM heatmap."""
    card = result.model_version.card if result is not None else {}
    extra = findings.card_extra(card)
    base = _EXPLANATIONS.get(extra.get("explanation"), GRAD_CAM)
    return replace(
        base,
        caption=base.caption.format(level=ml_adapter.contour_level(card)),
        looks_for=str(extra.get("looks_for") or ""),
        cannot_exclude=str(extra.get("cannot_exclude") or ""),
    )


def viewer_start_slice(*, slices: list[Slice], result: AIResult | None) -> int:
    """Where the viewer opens: the most suspicious slice the model read (a brain
    slice, never the vertex or the neck, which it does not read), else the first it
    named, else the middle of the study. When several slices share the top
    probability (a large bleed saturates it), the middle one of them: the bleed's
    centre rather than its lowest edge."""
    # Finite only: a NaN stored by older code compares false with everything and
    # left no slice at the top (a 500 on the study page).
    read = [
        s for s in slices if s.probability is not None and math.isfinite(s.probability)
    ]
    if read:
        best = max(s.probability for s in read)
        tied = sorted(s.index for s in read if s.probability >= best - 1e-6)
        return tied[len(tied) // 2]
    if result is not None and result.suspicious_slices:
        return int(result.suspicious_slices[0])
    return len(slices) // 2


def result_words(*, study: Study, result: AIResult | None) -> dict:
    """How the study page words its AI finding: the headline and caveat of the
    result, or why the model declined the study; and the demo mark."""
    words = None
    if result is not None:
        words = findings.finding_words(
            card=result.model_version.card,
            label=result.label,
            stroke_type=result.stroke_type,
            volume_ml=result.volume_ml,
        )
    outside = (
        findings.outside_scope_words(study.outside_scope_reason)
        if study.outside_scope_reason and result is None
        else ""
    )
    demo = result.model_version.is_demo if result else study.ai_demo_model
    return {
        "finding": words,
        "outside_scope": outside,
        "demo": demo,
        "demo_mark": findings.DEMO,
        "outside_mark": findings.OUTSIDE_SCOPE,
    }


@dataclass(frozen=True)
class ReadingState:
    """The current reading as the study page shows it to `user`.

    ``mine``: the user wrote it (only then is the review form filled with it);
    ``on_current_result``: it was made on the AI result the page shows;
    ``agrees_now``: it agrees with that result (re-running the AI can change this
    after the reading was saved)."""

    mine: bool
    on_current_result: bool
    agrees_now: bool


def reading_state(
    *, user: User, result: AIResult | None, review: Review | None
) -> ReadingState | None:
    if review is None:
        return None
    agrees = reading_agrees(
        result, final_label=review.final_label, stroke_type=review.stroke_type
    )
    return ReadingState(
        mine=review.reviewer_id == user.pk,
        on_current_result=result is not None and review.ai_result_id == result.pk,
        agrees_now=agrees,
    )


def analysis_time_words(*, study: Study) -> str:
    """ "0.7 s after upload" ("after it arrived" for a study a scanner or PACS
    sent), or, for an analysis that was run again, "0.3 s after it was queued
    again": the time is counted from the latest queueing."""
    seconds = study.seconds_to_result
    if seconds is None:
        return ""
    rerun = study.results.count() > 1
    first = "upload" if study.arrival == Arrival.UPLOAD else "it arrived"
    since = "it was queued again" if rerun else first
    return f"{seconds:.1f} s after {since}"


def slice_png(*, study: Study, index: int, window: tuple[float, float] | None) -> bytes:
    """Slice `index` of the study's stored volume as the viewer shows it (an 8-bit
    grey PNG in `window`); Http404 when the study has no such slice (any more)."""
    path = storage.volume_path(study.pk)
    if not path.exists() or not 0 <= index < study.slice_count:
        raise Http404("No such slice.")
    volume = np.load(path, mmap_mode="r")
    return ml_adapter.slice_png(volume, index=index, units=study.units, window=window)


def overlay_path(*, study: Study, index: int) -> Path:
    """The stored overlay (heatmap or lesion outline) PNG of slice `index`; Http404
    when the slice has none."""
    item = study.slices.filter(index=index).exclude(heatmap_name="").first()
    path = storage.heatmap_path(study.pk, item.heatmap_name) if item else None
    if path is None or not path.exists():
        raise Http404("No heatmap for this slice.")
    return path
