"""Reports follow the studies: the report for a study's current state is rendered in
a worker when the study becomes ready and when its reading changes."""

from django.dispatch import receiver

from diagnosis.signals import review_saved, study_ready

from .queue import report_enqueue


@receiver(study_ready, dispatch_uid="reports-render-on-study-ready")
def render_on_study_ready(sender, study_id: int, **kwargs) -> None:
    report_enqueue(study_id=study_id)


@receiver(review_saved, dispatch_uid="reports-render-on-review-saved")
def render_on_review_saved(sender, review, **kwargs) -> None:
    report_enqueue(study_id=review.study_id)  # waits for the reading's commit
