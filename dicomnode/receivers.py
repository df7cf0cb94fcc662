"""dicomnode follows the studies: results go back to the PACS, and the stroke team
is alerted, when a study becomes ready; the results go again when its reading
changes. Each receiver calls one service, which enqueues on commit."""

from django.dispatch import receiver

from diagnosis.signals import review_saved, study_ready

from . import alerts, delivery


# Connected first: the alert is the stroke team's clock, and a worker takes
# messages in the order they were sent, so it goes out before the deliveries.
@receiver(study_ready, dispatch_uid="dicomnode-alert-on-study-ready")
def alert_on_study_ready(sender, study_id: int, **kwargs) -> None:
    alerts.alerts_for_ready_study(study_id=study_id)


@receiver(study_ready, dispatch_uid="dicomnode-deliver-on-study-ready")
def deliver_on_study_ready(sender, study_id: int, **kwargs) -> None:
    delivery.deliveries_for_ready_study(study_id=study_id)


@receiver(review_saved, dispatch_uid="dicomnode-deliver-on-review-saved")
def deliver_on_review_saved(sender, review, **kwargs) -> None:
    # Inside the reading's transaction: the rows commit with it, the sends after.
    delivery.deliveries_for_review(review=review)
