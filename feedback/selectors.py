"""Reads of the feedback app: the active model for a study, feedback cases, data
sets, jobs, and the promotion gate's verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.models import Role, User

from .models import (
    LOW_SPECIFICITY,
    CaseStatus,
    DatasetStatus,
    FeedbackCase,
    JobStatus,
    ModelEvaluation,
    ModelStatus,
    ModelVersion,
    RetrainingJob,
    TrainingDataset,
)

# A study uses the richest active model for its modality: stroke type when there is
# one, else stroke vs normal.
_TASK_PREFERENCE = ("type", "binary")
CASE_READERS = (Role.RADIOLOGIST, Role.ADMIN)


def model_version_for_study(*, modality: str) -> ModelVersion | None:
    active = {
        m.task: m
        for m in ModelVersion.objects.filter(
            status=ModelStatus.ACTIVE, modality=(modality or "CT").upper()
        )
    }
    for task in _TASK_PREFERENCE:
        if task in active:
            return active[task]
    return None


def model_version_active(*, task: str, modality: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(
        status=ModelStatus.ACTIVE, task=task, modality=modality
    ).first()


def model_version_list():
    return (
        ModelVersion.objects.select_related("created_by", "training_job")
        .prefetch_related("evaluations__dataset")
        .annotate(result_count=Count("results"))
        .order_by("-created_at")
    )


def model_version_get(*, pk: int) -> ModelVersion:
    version = model_version_list().filter(pk=pk).first()
    if version is None:
        raise Http404("No such model version.")
    return version


def model_evaluations(*, version: ModelVersion) -> QuerySet[ModelEvaluation]:
    return version.evaluations.select_related("dataset")


# --- feedback cases -------------------------------------------------------------
def case_list_for_user(*, user: User, status: str = "") -> QuerySet[FeedbackCase]:
    if user.role not in CASE_READERS:
        return FeedbackCase.objects.none()
    cases = FeedbackCase.objects.select_related(
        "study", "ai_result", "model_version", "reported_by", "decided_by"
    )
    return cases.filter(status=status) if status else cases


def case_get_for_user(*, user: User, pk: int) -> FeedbackCase:
    case = case_list_for_user(user=user).filter(pk=pk).first()
    if case is None:
        raise Http404("No such feedback case.")
    return case


def case_counts() -> dict[str, int]:
    counts = dict(
        FeedbackCase.objects.values_list("status").annotate(n=Count("pk")).order_by()
    )
    return {s: counts.get(s, 0) for s in CaseStatus.values}


# --- data sets and jobs ---------------------------------------------------------
def dataset_list(*, ready: bool = False) -> QuerySet[TrainingDataset]:
    datasets = TrainingDataset.objects.select_related("created_by")
    return datasets.filter(status=DatasetStatus.READY) if ready else datasets


def dataset_get(*, pk: int) -> TrainingDataset:
    dataset = dataset_list().filter(pk=pk).first()
    if dataset is None:
        raise Http404("No such data set.")
    return dataset


def job_list() -> QuerySet[RetrainingJob]:
    return (
        RetrainingJob.objects.select_related("dataset", "started_by")
        .annotate(case_count=Count("feedback_cases", distinct=True))
        .order_by("-created_at")
    )


def job_get(*, pk: int) -> RetrainingJob:
    job = job_list().filter(pk=pk).first()
    if job is None:
        raise Http404("No such retraining job.")
    return job


def job_counts() -> dict[str, int]:
    counts = dict(
        RetrainingJob.objects.values_list("status").annotate(n=Count("pk")).order_by()
    )
    return {s: counts.get(s, 0) for s in JobStatus.values}


# --- the promotion gate ---------------------------------------------------------
GATE_METRICS = ("auc", "sensitivity")
METRIC_NAMES = {
    "auc": "AUC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
}


@dataclass
class GateDecision:
    """Whether a candidate may replace the active model without an override."""

    allowed: bool
    reasons: list[str]
    active: ModelVersion | None = None
    dataset: TrainingDataset | None = None
    candidate_evaluation: ModelEvaluation | None = None
    active_evaluation: ModelEvaluation | None = None
    comparisons: list[dict] = field(default_factory=list)
    # What the admin must weigh but the gate does not decide on (specificity).
    notes: list[str] = field(default_factory=list)


def _gate_dataset(candidate: ModelVersion) -> TrainingDataset | None:
    if candidate.training_job_id:
        return candidate.training_job.dataset
    evaluation = (
        candidate.evaluations.filter(error_message="").select_related("dataset").first()
    )
    return evaluation.dataset if evaluation else None


def _compare(candidate: ModelEvaluation, active: ModelEvaluation) -> list[dict]:
    tolerance = settings.PROMOTION_TOLERANCE
    rows = []
    for name in GATE_METRICS:
        mine, theirs = candidate.metric(name), active.metric(name)
        ok = (
            mine is not None
            and theirs is not None
            and not math.isnan(mine)
            and mine >= theirs - tolerance
        )
        rows.append({"metric": name, "candidate": mine, "active": theirs, "ok": ok})
    return rows


def promotion_gate(*, candidate: ModelVersion) -> GateDecision:
    """Compare on the candidate's data set's locked test split (study level)."""
    active = model_version_active(task=candidate.task, modality=candidate.modality)
    if active is None or active.pk == candidate.pk:
        return GateDecision(
            True, [f"No active {candidate.task} {candidate.modality} model yet."]
        )
    decision = GateDecision(False, [], active=active)
    dataset = decision.dataset = _gate_dataset(candidate)
    if dataset is None:
        decision.reasons.append("The candidate has no evaluation on a locked split.")
        return decision
    evaluations = {
        e.model_version_id: e
        for e in ModelEvaluation.objects.filter(
            dataset=dataset, model_version__in=[candidate, active]
        )
    }
    mine, theirs = evaluations.get(candidate.pk), evaluations.get(active.pk)
    decision.candidate_evaluation, decision.active_evaluation = mine, theirs
    for who, evaluation in (("candidate", mine), ("active model", theirs)):
        if evaluation is None or not evaluation.ok:
            why = evaluation.error_message if evaluation else "not evaluated"
            decision.reasons.append(f"The {who} has no result on {dataset}: {why}.")
    if decision.reasons:
        return decision
    decision.comparisons = _compare(mine, theirs)
    decision.notes = _small_split_notes(mine) + _specificity_notes(mine, theirs)
    for row in decision.comparisons:
        if not row["ok"]:
            decision.reasons.append(
                f"{METRIC_NAMES[row['metric']]} {_fmt(row['candidate'])} is below "
                f"the active model's {_fmt(row['active'])} by more than "
                f"{settings.PROMOTION_TOLERANCE}."
            )
    decision.allowed = not decision.reasons
    if decision.allowed:
        decision.reasons.append(
            f"Not worse than the active model on {dataset}'s locked split."
        )
    return decision


# Below this many studies a locked split's intervals are too wide to rank models.
SMALL_SPLIT_STUDIES = 30


def _small_split_notes(candidate: ModelEvaluation) -> list[str]:
    studies = candidate.report.get("studies") or 0
    if studies >= SMALL_SPLIT_STUDIES:
        return []
    low, high = (candidate.report["study"].get("ci95", {}).get("auc") or [0, 1])[:2]
    return [
        f"The locked split holds only {studies} studies (the candidate's AUC 95% "
        f"CI is [{low:.2f}, {high:.2f}]): differences between the two models on "
        f"it are mostly chance. A split of {SMALL_SPLIT_STUDIES} or more studies "
        "can tell them apart."
    ]


def _specificity_notes(candidate: ModelEvaluation, active: ModelEvaluation) -> list:
    """Sensitivity and AUC decide; specificity says how many normal studies a
    model would push up the worklist as strokes, which the admin should see."""
    mine, theirs = candidate.metric("specificity"), active.metric("specificity")
    if mine is None:
        return []
    notes = []
    if theirs is not None and mine < theirs - settings.PROMOTION_TOLERANCE:
        notes.append(
            f"Specificity {mine:.3f} is below the active model's {theirs:.3f}: more "
            "normal studies would be flagged as strokes (not part of the gate)."
        )
    if mine < LOW_SPECIFICITY:
        notes.append(
            f"At its threshold the candidate calls {1 - mine:.0%} of the normal "
            "studies of the locked split strokes."
        )
    return notes


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def feedback_case_open_for_study(*, study_id: int) -> FeedbackCase | None:
    return FeedbackCase.objects.filter(
        Q(status=CaseStatus.PENDING) | Q(status=CaseStatus.CONFIRMED), study_id=study_id
    ).first()


# --- the admin dashboard --------------------------------------------------------
def dashboard_figures(*, days: int = 30) -> dict:
    """The portal's live figures over the last `days` days."""
    from datetime import timedelta
    from statistics import median

    from django.db.models.functions import TruncDate
    from django.utils import timezone

    from diagnosis.models import Review, Study, StudyStatus

    since = timezone.now() - timedelta(days=days)
    recent = Study.objects.filter(created_at__gte=since)
    per_day = (
        recent.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by("day")
    )
    timed = recent.filter(ready_at__isnull=False, queued_at__isnull=False).values_list(
        "queued_at", "ready_at"
    )[:5000]
    seconds = [(ready - queued).total_seconds() for queued, ready in timed]
    ready = recent.filter(status=StudyStatus.READY)
    reviews = Review.objects.filter(
        is_current=True, ai_result__isnull=False, created_at__gte=since
    )
    ready_count, review_count = ready.count(), reviews.count()
    return {
        "days": days,
        "studies": recent.count(),
        "studies_per_day": [
            {"day": row["day"].isoformat(), "n": row["n"]} for row in per_day
        ],
        "median_seconds_to_result": round(median(seconds), 1) if seconds else None,
        "reviewed_share": (
            ready.filter(reviewed=True).count() / ready_count if ready_count else None
        ),
        "agreement_rate": (
            reviews.filter(agrees_with_ai=True).count() / review_count
            if review_count
            else None
        ),
        "failed": recent.filter(status=StudyStatus.FAILED).count(),
    }


def user_role_counts() -> dict[str, int]:
    counts = dict(
        User.objects.filter(is_active=True)
        .values_list("role")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {role: counts.get(role, 0) for role in Role.values}
    counts["awaiting approval"] = User.objects.filter(
        is_active=False, approved_at__isnull=True
    ).count()
    return counts
