"""The stroke team is alerted when a study becomes ready with a suspected finding:
a signed webhook to a local HTTP receiver (body and HMAC checked, no patient name
unless allowed) and an e-mail in Django's outbox (no patient name in the subject),
each recorded with the time from the last slice received. A study without a
suspected finding alerts nobody; a failing webhook is retried, then marked failed.
A radiologist acknowledges the alert on the study page; others are refused."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from diagnosis.models import Study
from diagnosis.signals import study_ready
from dicomnode.alerts import ALERT_ATTEMPTS
from dicomnode.models import Alert, AlertState

from .conftest import lesion_analysis

SECRET = "test-webhook-secret"


@pytest.fixture
def alerting(settings, webhook_receiver):
    settings.ALERT_EMAILS = ["stroke-team@hospital.test"]
    settings.ALERT_WEBHOOK_URL = webhook_receiver.url
    settings.ALERT_WEBHOOK_SECRET = SECRET
    settings.PORTAL_URL = "https://stroke.hospital.test"
    return webhook_receiver


@pytest.fixture
def make_ready(
    analysed_study, phantom, eager_celery, django_capture_on_commit_callbacks
):
    """Process the phantom with `analysis` (default: a suspected 12.5 mL bleed);
    its last slice arrived `seconds_ago` before; run what `study_ready` enqueued."""

    def run(analysis=None, *, seconds_ago: float = 42):
        with django_capture_on_commit_callbacks(execute=True):
            study = analysed_study(analysis or lesion_analysis(phantom, volume_ml=12.5))
            Study.objects.filter(pk=study.pk).update(
                last_instance_at=timezone.now() - timedelta(seconds=seconds_ago),
                received_from="SCANNER1",
            )
        study.refresh_from_db()
        return study

    return run


def verified_body(request) -> dict:
    raw = request["body"]
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(
        request["headers"]["X-Stroke-Portal-Signature"], expected
    )
    assert request["headers"]["X-Stroke-Portal-Timestamp"].isdigit()
    assert request["headers"]["Content-Type"] == "application/json"
    return json.loads(raw)


def test_suspected_study_alerts_by_signed_webhook_and_email(
    alerting, make_ready, mailoutbox
):
    study = make_ready()

    (request,) = alerting.requests
    body = verified_body(request)
    assert body["study"] == study.pk
    assert body["url"] == f"https://stroke.hospital.test/studies/{study.pk}/"
    assert body["finding"] == "stroke"
    assert body["probability"] == pytest.approx(study.ai_probability, abs=1e-4)
    assert body["volume_ml"] == 12.5
    assert body["model"] == "unit-test model 1" or "unit-test model" in body["model"]
    assert body["received_from"] == "SCANNER1" and body["patient_id"] == "MRN-0042"
    assert body["seconds_from_last_instance"] >= 42
    assert body["ready_at"] and "decision support, not a diagnosis" in body["words"]
    assert "patient_name" not in body
    assert "PHANTOM" not in request["body"].decode()  # the DICOM patient name

    (mail,) = mailoutbox
    assert mail.to == ["stroke-team@hospital.test"]
    assert "AI suspects stroke" in mail.subject and str(study.pk) in mail.subject
    assert "PHANTOM" not in mail.subject
    assert f"https://stroke.hospital.test/studies/{study.pk}/" in mail.body
    assert "MRN-0042" in mail.body and "12.5 mL" in mail.body
    assert "decision support, not a diagnosis" in mail.body

    alerts = Alert.objects.filter(study=study)
    assert {a.channel for a in alerts} == {"email", "webhook"}
    for alert in alerts:
        assert alert.state == AlertState.SENT and alert.sent_at is not None
        assert 42 <= alert.seconds_from_last_instance < 120


def test_repeated_study_ready_alerts_nobody_twice(
    alerting, make_ready, mailoutbox, django_capture_on_commit_callbacks
):
    study = make_ready()
    with django_capture_on_commit_callbacks(execute=True):
        study_ready.send(sender=Study, study_id=study.pk)
    assert len(alerting.requests) == 1 and len(mailoutbox) == 1
    assert Alert.objects.filter(study=study).count() == 2


def test_webhook_names_the_patient_only_when_allowed(alerting, make_ready, settings):
    settings.ALERT_WEBHOOK_PATIENT_NAME = True
    study = make_ready()
    body = verified_body(alerting.requests[0])
    assert (
        body["patient_name"] == study.patient_name and "PHANTOM" in body["patient_name"]
    )


def test_study_without_suspected_finding_alerts_nobody(
    alerting, make_ready, phantom, mailoutbox
):
    study = make_ready(lesion_analysis(phantom, label="normal"))
    assert alerting.requests == [] and mailoutbox == []
    assert not Alert.objects.filter(study=study).exists()


def test_per_finding_threshold_decides_over_the_model_call(
    alerting, make_ready, phantom, settings, mailoutbox
):
    # Above the model's own threshold, below the hospital's: no alert.
    settings.ALERT_THRESHOLDS = {"stroke": 0.99}
    quiet = make_ready(lesion_analysis(phantom))
    assert not Alert.objects.filter(study=quiet).exists()
    assert alerting.requests == []


def test_low_per_finding_threshold_alerts_on_what_the_model_called_normal(
    alerting, make_ready, phantom, settings
):
    settings.ALERT_THRESHOLDS = {"stroke": 0.1}
    study = make_ready(lesion_analysis(phantom, label="normal"))  # probability 0.12
    body = verified_body(alerting.requests[0])
    assert body["study"] == study.pk and body["threshold"] == 0.1


def test_failing_webhook_is_retried_then_marked_failed(alerting, make_ready, settings):
    settings.ALERT_EMAILS = []
    alerting.status = 500
    study = make_ready()

    (alert,) = Alert.objects.filter(study=study)
    assert alert.state == AlertState.FAILED and alert.attempts == ALERT_ATTEMPTS
    assert alert.error_message == "Webhook answered HTTP 500"
    assert len(alerting.requests) == ALERT_ATTEMPTS


def test_webhook_down_is_recorded_in_words(make_ready, settings):
    from .conftest import free_port

    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/hook"
    settings.ALERT_WEBHOOK_SECRET = SECRET
    study = make_ready()
    (alert,) = Alert.objects.filter(study=study)
    assert alert.state == AlertState.FAILED
    assert alert.error_message == "Webhook unreachable (connection failed)"


def test_radiologist_acknowledges_alert_on_study_page(
    alerting, make_ready, as_radiologist, radiologist
):
    study = make_ready()
    page_url = reverse("diagnosis:study-detail", args=[study.pk])
    page = as_radiologist.get(page_url).content.decode()
    assert (
        "AI suspects stroke (hemorrhagic) \u2014 decision support, not a diagnosis"
        in page
    )
    assert page.count('data-testid="alert"') == 2
    assert 'data-testid="alert-acknowledge"' in page

    response = as_radiologist.post(
        reverse("dicomnode-results:alert-acknowledge", args=[study.pk]), follow=True
    )

    text = response.content.decode()
    assert "Alert acknowledged." in text and "Acknowledged by" in text
    assert 'data-testid="alert-acknowledge"' not in text
    for alert in Alert.objects.filter(study=study):
        assert alert.acknowledged_by == radiologist and alert.acknowledged_at
    entry = AuditEntry.objects.get(action="dicomnode.alert_acknowledge")
    assert entry.actor == radiologist and entry.object_id == str(study.pk)


def test_acknowledgement_is_refused_to_others(
    alerting, make_ready, as_clinician, as_outsider, as_admin
):
    study = make_ready()
    url = reverse("dicomnode-results:alert-acknowledge", args=[study.pk])
    assert as_outsider.post(url).status_code == 403
    assert as_clinician.post(url).status_code == 403
    missing = reverse("dicomnode-results:alert-acknowledge", args=[study.pk + 999])
    assert as_admin.post(missing).status_code == 404
    assert not Alert.objects.filter(acknowledged_at__isnull=False).exists()
    # Clinicians do not see the alert panel (the stroke team's, with its button).
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert 'data-testid="alerts"' not in page.content.decode()
