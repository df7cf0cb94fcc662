"""Alerts to the on-call stroke team: when a study becomes ready with a suspected
finding, an e-mail (Django's mail backend, to ALERT_EMAILS) and a signed webhook
(JSON to ALERT_WEBHOOK_URL, HMAC-SHA256 of the body under ALERT_WEBHOOK_SECRET).

One Alert row per AI result and channel: a repeated `study_ready` alerts nobody
twice. A send claims its row by counting the attempt with a guarded UPDATE (the
attempts it read), so two workers never send one alert together; a failed send is
retried by its task with backoff, and one whose message was lost by the sweep.
An alert is decision support: it links to the study and never fills in a reading.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from diagnosis.findings import HEMORRHAGE, card_finding
from diagnosis.models import AIResult, Label, Study, StudyStatus
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .models import Alert, AlertChannel, AlertState
from .queue import alert_enqueue

logger = logging.getLogger(__name__)

#: Attempts per alert before it is marked failed, and the first wait between two
#: (doubled after each: 5, 10, 20, 40 s).
ALERT_ATTEMPTS = 5
ALERT_RETRY_SECONDS = 5
WEBHOOK_TIMEOUT = 10  # seconds
SIGNATURE_HEADER = "X-Stroke-Portal-Signature"
TIMESTAMP_HEADER = "X-Stroke-Portal-Timestamp"
ACKNOWLEDGE = "dicomnode.alert_acknowledge"
#: A pending alert untouched this long lost its message (or its worker): resent.
STALE_AFTER = timedelta(minutes=5)


class AlertNotSent(Exception):
    """The channel did not take the alert this time."""


# --- which alerts a study raises --------------------------------------------------
def alert_threshold(result: AIResult) -> float | None:
    """ALERT_THRESHOLDS' probability for the result's finding; None: the model's
    own call decides."""
    return settings.ALERT_THRESHOLDS.get(card_finding(result.model_version.card))


def result_suspected(result: AIResult) -> bool:
    """The result alerts: its probability is above the finding's alert threshold
    when one is set, else the model called the finding."""
    threshold = alert_threshold(result)
    if threshold is not None:
        return result.probability > threshold
    return result.label == Label.STROKE


def suspicion_words(result: AIResult) -> str:
    """ "AI suspects intracranial hemorrhage — decision support, not a diagnosis"."""
    finding = card_finding(result.model_version.card)
    if finding == HEMORRHAGE:
        name = "intracranial hemorrhage"
    else:
        name = f"stroke ({result.stroke_type})" if result.stroke_type else "stroke"
    return f"AI suspects {name} \u2014 decision support, not a diagnosis"


def _channels() -> list[tuple[str, str]]:
    channels = []
    if settings.ALERT_EMAILS:
        channels.append((AlertChannel.EMAIL, ", ".join(settings.ALERT_EMAILS)))
    if settings.ALERT_WEBHOOK_URL:
        channels.append((AlertChannel.WEBHOOK, settings.ALERT_WEBHOOK_URL))
    return channels


def alerts_for_ready_study(*, study_id: int) -> list[int]:
    """Alerts for a study that became ready with a suspected finding, one per
    configured channel, enqueued on commit. Returns the ids it created (none for
    a study without a suspected finding, or when the alerts exist already)."""
    study = Study.objects.filter(pk=study_id, status=StudyStatus.READY).first()
    result = study.current_result if study is not None else None
    if result is None or not result_suspected(result):
        return []
    created_ids = []
    for channel, recipient in _channels():
        alert, created = Alert.objects.get_or_create(
            result=result,
            channel=channel,
            defaults={"study": study, "recipient": recipient[:500]},
        )
        if created:
            created_ids.append(alert.pk)
    for alert_id in created_ids:
        alert_enqueue(alert_id=alert_id)
    return created_ids


# --- sending one alert ------------------------------------------------------------
def alert_send(*, alert_id: int) -> Alert | None:
    """Send one pending alert. None when there was nothing to do (sent, failed, or
    claimed by another worker). When the channel fails and attempts remain, the
    next attempt is enqueued with backoff; after the last one the alert is failed."""
    alert = Alert.objects.filter(pk=alert_id, state=AlertState.PENDING).first()
    if alert is None or not _claim(alert):
        return None
    alert = Alert.objects.select_related(
        "study", "result", "result__model_version"
    ).get(pk=alert_id)
    try:
        _deliver(alert)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as error:  # any channel's error is recorded, then retried
        return _failed(alert, _error_words(error))
    now = timezone.now()
    Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).update(
        state=AlertState.SENT,
        sent_at=now,
        seconds_from_last_instance=_seconds_from_last_instance(alert.study, now),
        error_message="",
        updated_at=now,
    )
    logger.info(
        "alert %s (%s) for study %s sent", alert.pk, alert.channel, alert.study_id
    )
    alert.refresh_from_db()
    return alert


def _claim(alert: Alert) -> bool:
    return bool(
        Alert.objects.filter(
            pk=alert.pk, state=AlertState.PENDING, attempts=alert.attempts
        ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    )


def _failed(alert: Alert, reason: str) -> Alert:
    final = alert.attempts >= ALERT_ATTEMPTS  # counted by the claim
    Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).update(
        state=AlertState.FAILED if final else AlertState.PENDING,
        error_message=reason[:1000],
        updated_at=timezone.now(),
    )
    logger.warning("alert %s attempt %s failed: %s", alert.pk, alert.attempts, reason)
    if not final:
        wait = ALERT_RETRY_SECONDS * 2 ** (alert.attempts - 1)
        alert_enqueue(alert_id=alert.pk, countdown=wait)
    alert.refresh_from_db()
    return alert


def _error_words(error: Exception) -> str:
    if isinstance(error, requests.Timeout):
        return f"Webhook did not answer within {WEBHOOK_TIMEOUT} s"
    if isinstance(error, requests.ConnectionError):
        return "Webhook unreachable (connection failed)"
    return str(error) or error.__class__.__name__


def _seconds_from_last_instance(study: Study, now) -> float:
    """From the study's last instance received (its upload, for an upload)."""
    start = study.last_instance_at or study.created_at
    return round((now - start).total_seconds(), 3)


def _deliver(alert: Alert) -> None:
    if alert.channel == AlertChannel.EMAIL:
        _send_email(alert)
    else:
        _send_webhook(alert)


def study_link(study: Study) -> str:
    path = reverse("diagnosis:study-detail", args=[study.pk])
    return settings.PORTAL_URL.rstrip("/") + path


def _send_email(alert: Alert) -> None:
    study, result = alert.study, alert.result
    words = suspicion_words(result)
    headline = words.split(" \u2014 ")[0]  # "AI suspects intracranial hemorrhage"
    # The subject shows on lock screens and in mail lists: no patient name in it.
    subject = f"[{settings.PORTAL_NAME}] {headline} (study {study.pk})"
    lines = [
        words + ".",
        "",
        f"Study: {study_link(study)}",
        f"Patient ID: {study.patient_id or 'not given'}",
        f"Probability: {result.probability:.2f} "
        f"(model threshold {result.threshold:.2f})",
    ]
    if result.volume_ml is not None:
        lines.append(f"Volume: {result.volume_ml:.1f} mL")
    lines += [
        f"Model: {result.model_version}",
        f"Received from: {study.received_from or 'upload'}",
        "",
        "Open the study to read it; the AI result fills in no reading.",
    ]
    sent = send_mail(
        subject,
        "\n".join(lines),
        settings.DEFAULT_FROM_EMAIL,
        list(settings.ALERT_EMAILS),
    )
    if not sent:
        raise AlertNotSent("The mail backend accepted no message")


def webhook_body(alert: Alert, *, now) -> dict:
    """What the webhook receives. No patient name unless ALERT_WEBHOOK_PATIENT_NAME:
    the body leaves the hospital's systems through whatever the URL forwards to."""
    study, result = alert.study, alert.result
    body = {
        "alert": alert.pk,
        "study": study.pk,
        "url": study_link(study),
        "finding": card_finding(result.model_version.card),
        "words": suspicion_words(result),
        "probability": round(result.probability, 4),
        "threshold": alert_threshold(result) or result.threshold,
        "volume_ml": result.volume_ml,
        "model": str(result.model_version),
        "demo_model": result.model_version.is_demo,
        "ready_at": study.ready_at.isoformat() if study.ready_at else None,
        "received_from": study.received_from,
        "patient_id": study.patient_id,
        "seconds_from_last_instance": _seconds_from_last_instance(study, now),
        "sent_at": now.isoformat(),
    }
    if settings.ALERT_WEBHOOK_PATIENT_NAME:
        body["patient_name"] = study.patient_name
    return body


def webhook_signature(body: bytes) -> str:
    """ "sha256=<hex HMAC-SHA256 of the raw body under ALERT_WEBHOOK_SECRET>"."""
    key = settings.ALERT_WEBHOOK_SECRET.encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _send_webhook(alert: Alert) -> None:
    body = json.dumps(webhook_body(alert, now=timezone.now())).encode()
    response = requests.post(
        alert.recipient,
        data=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature(body),
            TIMESTAMP_HEADER: str(int(time.time())),
        },
        timeout=WEBHOOK_TIMEOUT,
        allow_redirects=False,
    )
    if not 200 <= response.status_code < 300:
        raise AlertNotSent(f"Webhook answered HTTP {response.status_code}")


def alerts_sweep() -> int:
    """Enqueue pending alerts nobody has touched for a while (a lost message or a
    worker that died). Returns how many."""
    stale = timezone.now() - STALE_AFTER
    ids = list(
        Alert.objects.filter(
            state=AlertState.PENDING, updated_at__lte=stale
        ).values_list("pk", flat=True)[:500]
    )
    for alert_id in ids:
        alert_enqueue(alert_id=alert_id)
    return len(ids)


# --- acknowledgement ----------------------------------------------------------------
def alerts_acknowledge(*, study: Study, user, context: AuditContext) -> int:
    """A radiologist or admin has seen the study's alerts: recorded on each one not
    acknowledged yet, and audited. Returns how many it acknowledged."""
    now = timezone.now()
    ids = list(
        Alert.objects.filter(study=study, acknowledged_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    Alert.objects.filter(pk__in=ids, acknowledged_at__isnull=True).update(
        acknowledged_by=user, acknowledged_at=now, updated_at=now
    )
    audit_record(action=ACKNOWLEDGE, context=context, obj=study, detail={"alerts": ids})
    return len(ids)
