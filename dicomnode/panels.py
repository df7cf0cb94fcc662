"""Reads for the study page's panels from dicomnode (diagnosis.extensions): where
the study's results stand at each destination, and the alerts it raised. The page
itself is scoped and audited by diagnosis (study.view); these read only rows of the
study it shows."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Role
from accounts.permissions import user_has_role

from .alerts import suspicion_words
from .models import Alert, Delivery, DeliveryState

DELIVERIES_PANEL = "dicomnode/_deliveries.html"
ALERTS_PANEL = "dicomnode/_alerts.html"
READERS = (Role.RADIOLOGIST, Role.ADMIN)


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    words: str


def study_deliveries(*, study) -> list[Delivery]:
    """The newest delivery per destination and kind (its latest revision), in the
    order a reader scans them: by destination, then PDF, key images, SR."""
    rows = Delivery.objects.filter(study=study).select_related("destination")
    latest: dict[tuple[int, str], Delivery] = {}
    for delivery in rows.order_by("-created_at", "-pk"):
        latest.setdefault((delivery.destination_id, delivery.kind), delivery)
    order = {"pdf": 0, "sc": 1, "sr": 2}
    return sorted(
        latest.values(), key=lambda d: (d.destination.name, order.get(d.kind, 9))
    )


def study_page_deliveries(*, user, study) -> dict:
    """Radiologists and admins see each delivery's state; a clinician only where the
    results were sent (and an admin may send failed ones again)."""
    deliveries = study_deliveries(study=study)
    if not deliveries:
        return {}
    detailed = user_has_role(user, *READERS)
    if not detailed:
        deliveries = [d for d in deliveries if d.state == DeliveryState.SENT]
        if not deliveries:
            return {}
    return {
        "deliveries": deliveries,
        "deliveries_detailed": detailed,
        "deliveries_failed": any(d.state == DeliveryState.FAILED for d in deliveries),
        "can_resend": user_has_role(user, Role.ADMIN),
        "study_panels": [DELIVERIES_PANEL],
    }


def study_page_alerts(*, user, study) -> dict:
    """The study's alerts and who acknowledged them, for radiologists and admins."""
    if not user_has_role(user, *READERS):
        return {}
    alerts = list(
        Alert.objects.filter(study=study)
        .select_related("result__model_version", "acknowledged_by")
        .order_by("created_at", "pk")
    )
    if not alerts:
        return {}
    return {
        "alerts": [AlertRow(a, suspicion_words(a.result)) for a in alerts],
        "alerts_unacknowledged": any(a.acknowledged_at is None for a in alerts),
        "study_panels": [ALERTS_PANEL],
    }
