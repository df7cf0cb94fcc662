"""Reads of the feedback app: the active model for a study, feedback cases, data
sets, jobs, and the promotion gate's verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import Http404

from accounts.models import Role, User

from .conf import promotion_min_locked_studies, promotion_min_specificity
from .formatting import figure
from .models import (
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


def model_evaluations(*, version: ModelVersion) -> list:
    """Its evaluations on locked splits, then its card's own figures (if any): the
    model page shows whatever the model list shows for it."""
    card = version.card_evaluation
    return [*version.evaluations.select_related("dataset"), *filter(None, [card])]


# --- feedback cases -------------------------------------------------------------
def case_list_for_user(*, user: User, status: str = "") -> QuerySet[FeedbackCase]:
    if user.role not in CASE_READERS:
        return FeedbackCase.objects.none()
    cases = FeedbackCase.objects.select_related(
        "study", "ai_result", "model_version", "reported_by", "decided_by"
    )
    return cases.filter(status=status) if status else cases


def case_list_for_study(*, user: User, study) -> QuerySet[FeedbackCase]:
    """A study's feedback cases, newest first, for its page: training internals
    (case numbers, confirmation, kept out of training) are for radiologists and
    admins; a clinician sees the reading itself, not what it teaches the model."""
    return case_list_for_user(user=user).filter(study=study).order_by("-created_at")


def study_page_cases(*, user: User, study) -> dict:
    """The study page's part from feedback (diagnosis.extensions)."""
    return {"feedback_cases": case_list_for_study(user=user, study=study)}


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
    # What the admin must weigh but the gate does not decide on.
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
    """Judge the candidate on its data set's locked test split (study level): it
    must meet the specificity floor, on a split large enough to tell, and be no
    worse than the active model there. A first model not judged on any split has
    nothing to be judged on and nothing to replace: it passes."""
    active = model_version_active(task=candidate.task, modality=candidate.modality)
    if active is not None and active.pk == candidate.pk:
        return GateDecision(True, ["This version is the active model."])
    first = f"No active {candidate.task} {candidate.modality} model yet."
    dataset = _gate_dataset(candidate)
    mine, theirs = _gate_evaluations(dataset, candidate, active)
    if active is None and not (mine and mine.ok):
        return GateDecision(True, [first], dataset=dataset, candidate_evaluation=mine)
    decision = GateDecision(False, [], active, dataset, mine, theirs)
    decision.reasons = _missing_reasons(decision)
    if decision.reasons:
        return decision
    decision.reasons = _split_size_reasons(mine, dataset) + _floor_reasons(mine)
    decision.notes = _small_split_notes(mine)
    if theirs is not None:
        decision.comparisons = _compare(mine, theirs)
        decision.reasons += _comparison_reasons(decision.comparisons)
        decision.notes += _specificity_notes(mine, theirs)
    decision.allowed = not decision.reasons
    if decision.allowed:
        decision.reasons.append(
            f"Not worse than the active model on {dataset}'s locked split."
            if theirs is not None
            else f"{first} The candidate meets the gate's floors on {dataset}'s "
            "locked split."
        )
    return decision


def _gate_evaluations(dataset, candidate, active) -> tuple:
    """(candidate's, active model's) evaluation on ``dataset``; None where absent."""
    if dataset is None:
        return None, None
    evaluations = {
        e.model_version_id: e
        for e in ModelEvaluation.objects.filter(
            dataset=dataset, model_version__in=[v for v in (candidate, active) if v]
        )
    }
    return evaluations.get(candidate.pk), evaluations.get(active.pk if active else 0)


def _missing_reasons(decision: GateDecision) -> list[str]:
    if decision.dataset is None:
        return ["The candidate has no evaluation on a locked split."]
    reasons = []
    pairs = [("candidate", decision.candidate_evaluation)]
    if decision.active is not None:
        pairs.append(("active model", decision.active_evaluation))
    for who, evaluation in pairs:
        if evaluation is None or not evaluation.ok:
            why = evaluation.error_message if evaluation else "not evaluated"
            reasons.append(f"The {who} has no result on {decision.dataset}: {why}.")
    return reasons


def _comparison_reasons(comparisons: list[dict]) -> list[str]:
    return [
        f"{METRIC_NAMES[row['metric']]} {figure(row['candidate'])} is below the "
        f"active model's {figure(row['active'])} by more than "
        f"{settings.PROMOTION_TOLERANCE}."
        for row in comparisons
        if not row["ok"]
    ]


def _auc_interval(evaluation: ModelEvaluation) -> str:
    low, high = (evaluation.report["study"].get("ci95", {}).get("auc") or [0, 1])[:2]
    return f"[{figure(low, 2)}, {figure(high, 2)}]"


def _split_size_reasons(candidate: ModelEvaluation, dataset) -> list[str]:
    studies, needed = (
        candidate.report.get("studies") or 0,
        promotion_min_locked_studies(),
    )
    if studies >= needed:
        return []
    return [
        f"The locked split of {dataset} holds only {studies} studies, fewer than "
        f"the {needed} the gate needs (PROMOTION_MIN_LOCKED_STUDIES): on it one "
        "study more or less moves sensitivity or specificity by a tenth or more, "
        f"and the candidate's AUC 95% CI is {_auc_interval(candidate)}."
    ]


def _floor_reasons(candidate: ModelEvaluation) -> list[str]:
    """Sensitivity bought by calling normal studies strokes is refused: they would
    push the real strokes down the worklist."""
    value, floor = candidate.metric("specificity"), promotion_min_specificity()
    if value is None:
        return [
            "The candidate's specificity on the locked split is not known (no "
            f"normal study in it?): the gate needs it to be at least {floor}."
        ]
    if value >= floor:
        return []
    return [
        f"Specificity {figure(value)} is below the floor of {floor} "
        "(PROMOTION_MIN_SPECIFICITY): at its threshold the candidate calls "
        f"{1 - value:.0%} of the normal studies of the locked split strokes."
    ]


# Below this many studies a locked split's intervals are too wide to rank models.
SMALL_SPLIT_STUDIES = 30


def _small_split_notes(candidate: ModelEvaluation) -> list[str]:
    """Between the gate's minimum and a split that can rank two models."""
    studies = candidate.report.get("studies") or 0
    if not promotion_min_locked_studies() <= studies < SMALL_SPLIT_STUDIES:
        return []
    return [
        f"The locked split holds only {studies} studies (the candidate's AUC 95% "
        f"CI is {_auc_interval(candidate)}): differences between the two models on "
        f"it are mostly chance. A split of {SMALL_SPLIT_STUDIES} or more studies "
        "can tell them apart."
    ]


def _specificity_notes(candidate: ModelEvaluation, active: ModelEvaluation) -> list:
    """Above the floor, specificity does not decide; a drop says how many more
    normal studies would go up the worklist as strokes, which the admin should see."""
    mine, theirs = candidate.metric("specificity"), active.metric("specificity")
    if mine is None or theirs is None:
        return []
    if mine < theirs - settings.PROMOTION_TOLERANCE:
        return [
            f"Specificity {figure(mine)} is below the active model's "
            f"{figure(theirs)}: more normal studies would be flagged as strokes."
        ]
    return []


# --- the admin dashboard --------------------------------------------------------
def _every_day(per_day, *, since) -> list[dict]:
    """One row per calendar day from `since` to today, 0 where nothing came: a chart
    of the days that had studies only draws one day as a bar as wide as the chart,
    on an axis of milliseconds."""
    from datetime import timedelta

    from django.utils import timezone

    counts = {row["day"]: row["n"] for row in per_day}
    day, today = timezone.localtime(since).date(), timezone.localdate()
    rows = []
    while day <= today:
        rows.append({"day": day.isoformat(), "n": counts.get(day, 0)})
        day += timedelta(days=1)
    return rows


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
        "studies_per_day": _every_day(per_day, since=since),
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
