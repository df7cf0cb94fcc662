"""Record a radiologist's reading of a study."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import User

from .. import signals
from ..models import (
    Label,
    Review,
    Study,
    StudyStatus,
    reading_agrees,
    worklist_bucket,
)
from .common import stroke_type_for


@transaction.atomic
def review_submit(
    *,
    study: Study,
    reviewer: User,
    final_label: str,
    stroke_type: str = "",
    impression: str = "",
    measurements: list[dict] | None = None,
    audit: AuditContext | None = None,
) -> Review:
    """Record a radiologist's reading; an earlier one stays as history. Whether it
    agrees with the AI is derived from the current AI result, not trusted from
    input. Sends `review_saved` in this transaction (feedback opens a case on a
    disagreement; reports render the new state once committed)."""
    _check_reviewable(study, final_label)
    stroke_type = stroke_type_for(label=final_label, stroke_type=stroke_type)
    result = study.current_result
    agrees = reading_agrees(result, final_label=final_label, stroke_type=stroke_type)
    _earlier_readings_supersede(study)
    review = Review.objects.create(
        study=study,
        ai_result=result,
        reviewer=reviewer,
        agrees_with_ai=agrees,
        final_label=final_label,
        stroke_type=stroke_type,
        impression=impression,
        measurements=_on_its_slices(measurements or [], study),
    )
    signals.review_saved.send(sender=Review, review=review)
    audit_record(
        action="study.review",
        context=audit,
        actor=reviewer,
        obj=study,
        detail={"final_label": final_label, "agrees_with_ai": agrees},
    )
    return review


def _on_its_slices(kept: list[dict], study: Study) -> list[dict]:
    """Each measurement is on a series of the study and a slice that series has."""
    counts = {0: study.slice_count} | dict(
        study.other_series.values_list("index", "slice_count")
    )
    for m in kept:
        series = m.get("series", 0)
        if series not in counts:
            raise ValidationError(
                f"A measurement is on series {series}, which this study does not have."
            )
        if not 0 <= m["slice"] < counts[series]:
            which = "this study" if series == 0 else f"series {series}"
            raise ValidationError(
                f"A measurement is on slice {m['slice'] + 1}, which {which} does "
                f"not have (it has {counts[series]})."
            )
    return kept


def _check_reviewable(study: Study, final_label: str) -> None:
    if study.status != StudyStatus.READY:
        raise ValidationError("The study has no AI result yet; review it once ready.")
    if final_label not in Label.values:
        raise ValidationError({"final_label": "Choose stroke or no stroke."})


def _earlier_readings_supersede(study: Study) -> None:
    """The study's earlier reading stays as history, no longer current."""
    Review.objects.select_for_update().filter(study=study, is_current=True).update(
        is_current=False
    )
    Study.objects.filter(pk=study.pk).update(
        reviewed=True,
        bucket=worklist_bucket(status=study.status, reviewed=True),
        updated_at=timezone.now(),
    )
