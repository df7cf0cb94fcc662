"""Writes for feedback cases: created by a disagreeing review or flagged as hard,
confirmed by a second reader (or by the first, where the site allows it), rejected
with a reason."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import Role, User
from diagnosis.models import Review, Study, StudyStatus

from ..models import CaseKind, CaseStatus, FeedbackCase

SUPERSEDED = "Superseded by a later reading of the study."
DECIDERS = (Role.RADIOLOGIST, Role.ADMIN)


def _close_pending(*, study: Study, reason: str) -> None:
    FeedbackCase.objects.filter(study=study, status=CaseStatus.PENDING).update(
        status=CaseStatus.REJECTED,
        rejection_reason=reason,
        decided_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _case_create(
    *,
    review: Review,
    kind: str,
    reporter: User,
    note: str = "",
    audit: AuditContext | None = None,
) -> FeedbackCase:
    result = review.ai_result
    case = FeedbackCase.objects.create(
        study=review.study,
        ai_result=result,
        model_version=result.model_version if result else None,
        review=review,
        kind=kind,
        ai_label=result.label if result else "",
        ai_stroke_type=result.stroke_type if result else "",
        final_label=review.final_label,
        stroke_type=review.stroke_type,
        note=note,
        reported_by=reporter,
    )
    if settings.FEEDBACK_SINGLE_CONFIRMATION:
        # A small site's single reader: their reading is the confirmation.
        case.status = CaseStatus.CONFIRMED
        case.decided_by = reporter
        case.decided_at = timezone.now()
        case.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    audit_record(
        action="feedback.create",
        context=audit,
        actor=reporter,
        obj=case,
        detail={"study": review.study_id, "kind": kind, "status": case.status},
    )
    return case


def feedback_case_from_review(*, review: Review) -> FeedbackCase | None:
    """Called inside `review_submit`'s transaction. A reading that disagrees with
    the AI opens a case; any new reading withdraws the study's pending case, since
    the label it would teach may have changed. A confirmed case stays (a later
    change of mind goes through rejection, so decisions are never undone silently)."""
    _close_pending(study=review.study, reason=SUPERSEDED)
    if review.agrees_with_ai or review.ai_result is None:
        return None
    if FeedbackCase.objects.filter(
        study=review.study, status=CaseStatus.CONFIRMED
    ).exists():
        return None
    return _case_create(
        review=review, kind=CaseKind.MISCLASSIFIED, reporter=review.reviewer
    )


@transaction.atomic
def feedback_case_flag_hard(
    *, study: Study, by: User, note: str = "", audit: AuditContext | None = None
) -> FeedbackCase:
    """A study the AI got right but a radiologist found hard: worth training on.
    Needs the study's current reading (the label it teaches)."""
    if by.role not in DECIDERS:
        raise PermissionDenied("Only radiologists and admins add feedback cases.")
    review = study.current_review
    if study.status != StudyStatus.READY or review is None:
        raise ValidationError("Read the study first: a case teaches its reading.")
    if FeedbackCase.objects.filter(
        study=study, status__in=[CaseStatus.PENDING, CaseStatus.CONFIRMED]
    ).exists():
        raise ValidationError("This study already has an open feedback case.")
    kind = CaseKind.HARD if review.agrees_with_ai else CaseKind.MISCLASSIFIED
    return _case_create(review=review, kind=kind, reporter=by, note=note, audit=audit)


def _decide(
    *, case: FeedbackCase, by: User, status: str, reason: str, audit
) -> FeedbackCase:
    updated = FeedbackCase.objects.filter(pk=case.pk, status=CaseStatus.PENDING).update(
        status=status,
        decided_by=by,
        decided_at=timezone.now(),
        rejection_reason=reason,
        updated_at=timezone.now(),
    )
    if not updated:
        raise ValidationError("This case has been decided already.")
    case.refresh_from_db()
    audit_record(
        action=f"feedback.{'confirm' if status == CaseStatus.CONFIRMED else 'reject'}",
        context=audit,
        actor=by,
        obj=case,
        detail={"study": case.study_id, "reason": reason} if reason else {},
    )
    return case


@transaction.atomic
def feedback_case_confirm(
    *, case: FeedbackCase, by: User, audit: AuditContext | None = None
) -> FeedbackCase:
    """A second radiologist or an admin confirms; the reporter cannot confirm their
    own case unless FEEDBACK_SINGLE_CONFIRMATION is on."""
    if by.role not in DECIDERS:
        raise PermissionDenied("Only radiologists and admins confirm cases.")
    if by.pk == case.reported_by_id and not settings.FEEDBACK_SINGLE_CONFIRMATION:
        raise ValidationError(
            "A second reader must confirm this case: you reported it."
        )
    return _decide(
        case=case, by=by, status=CaseStatus.CONFIRMED, reason="", audit=audit
    )


@transaction.atomic
def feedback_case_reject(
    *, case: FeedbackCase, by: User, reason: str, audit: AuditContext | None = None
) -> FeedbackCase:
    """Anyone who may confirm may reject (the reporter too: a withdrawal), with a
    written reason."""
    if by.role not in DECIDERS:
        raise PermissionDenied("Only radiologists and admins reject cases.")
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why the case is rejected."})
    return _decide(
        case=case, by=by, status=CaseStatus.REJECTED, reason=reason, audit=audit
    )
