"""Results go back to the PACS: a study that becomes ready sends its report
(Encapsulated PDF), key images (Secondary Capture) and structured report by
C-STORE to every registered destination — a real dcmtk storescp here, Orthanc in
test_orthanc.py — and the files that arrive parse with pydicom and highdicom. A
destination that is down is retried with backoff, then marked failed with the
reason, and delivered once it is back; a new reading sends a new revision."""

from datetime import timedelta

import highdicom as hd
import pytest
from django.urls import reverse
from django.utils import timezone
from pydicom.uid import (
    Comprehensive3DSRStorage,
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
)

from accounts.models import AuditEntry
from diagnosis import ml_adapter
from diagnosis import services as diagnosis_services
from diagnosis.signals import study_ready
from dicomnode.models import Delivery, DeliveryState
from dicomnode.tasks import delivery_sweep_task
from reports.sr import NOT_A_DIAGNOSIS, VOLUME

from .conftest import free_port, lesion_analysis

COMPREHENSIVE_3D_SR = Comprehensive3DSRStorage


@pytest.fixture
def hemorrhage_model(active_model):
    """The active model is a hemorrhage segmenter (its card says so)."""
    active_model.card = {"extra": {"finding": "hemorrhage"}}
    active_model.save()
    return active_model


@pytest.fixture
def make_ready(
    analysed_study, phantom, eager_celery, django_capture_on_commit_callbacks
):
    """Process the phantom with `analysis` (default: a 12.5 mL bleed) and run what
    its `study_ready` enqueued (deliveries, alerts, report) eagerly."""

    def run(analysis=None):
        with django_capture_on_commit_callbacks(execute=True):
            study = analysed_study(analysis or lesion_analysis(phantom, volume_ml=12.5))
        return study

    return run


def sr_items(ds) -> dict[str, object]:
    """Every content item of an SR by its concept's meaning (nested ones too):
    NUM -> value, CODE -> the value's meaning, TEXT -> the text."""
    found: dict[str, object] = {}

    def walk(items):
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            if item.ValueType == "NUM":
                value = float(item.MeasuredValueSequence[0].NumericValue)
                unit = item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0]
                found[name] = (value, unit.CodeValue)
            elif item.ValueType == "CODE":
                found.setdefault(name, item.ConceptCodeSequence[0].CodeMeaning)
            elif item.ValueType == "TEXT":
                found.setdefault(name, item.TextValue)
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


def test_ready_study_sends_pdf_key_images_and_sr_that_parse(
    make_ready, hemorrhage_model, storescp, destination, tmp_path
):
    pacs = storescp()
    node = destination(pacs.port)

    study = make_ready()

    deliveries = Delivery.objects.filter(study=study, destination=node)
    assert {d.kind for d in deliveries} == {"pdf", "sc", "sr"}
    for d in deliveries:
        assert d.state == DeliveryState.SENT, (d.kind, d.peer_status)
        assert d.peer_status == "0x0000 Success" and d.attempts == 1
        assert d.sent_at is not None and d.revision.startswith("result-")
    (pdf,) = pacs.by_sop_class(EncapsulatedPDFStorage)
    assert pdf.EncapsulatedDocument.startswith(b"%PDF")
    assert pdf.StudyInstanceUID == study.study_instance_uid
    key_images = pacs.by_sop_class(SecondaryCaptureImageStorage)
    assert key_images and all(ds.pixel_array.ndim == 3 for ds in key_images)
    assert "AI RESULT - NOT FOR DIAGNOSIS" in key_images[0].ImageComments
    (sr,) = pacs.by_sop_class(COMPREHENSIVE_3D_SR)
    assert sr.StudyInstanceUID == study.study_instance_uid
    assert sr.PatientID == "MRN-0042"
    assert deliveries.get(kind="sr").sop_instance_uid == sr.SOPInstanceUID
    items = sr_items(sr)
    assert items["Intracranial hemorrhage"] == "Suspected"
    assert items["Probability"] == (pytest.approx(study.ai_probability, abs=1e-4), "1")
    assert items["Decision threshold"] == (0.4, "1")
    assert items["Volume"] == (12.5, "ml")
    assert items["Algorithm Name"] == "unit-test model"
    assert NOT_A_DIAGNOSIS in items["Comment"]
    # highdicom reads it back as the TID 1500 report it wrote.
    parsed = hd.sr.srread(
        next(p for p in pacs.folder.iterdir() if p.name.startswith("SR"))
    )
    (group,) = parsed.content.get_image_measurement_groups()
    (volume,) = group.get_measurements(name=VOLUME)
    assert volume.value == 12.5 and volume.unit.value == "ml"
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Suspected"
    assert group.finding_type.value == "1386000"  # SNOMED: intracranial hemorrhage


def test_repeated_study_ready_makes_and_sends_nothing_new(
    make_ready, storescp, destination, eager_celery, django_capture_on_commit_callbacks
):
    pacs = storescp()
    destination(pacs.port)
    study = make_ready()
    files = len(pacs.received())

    with django_capture_on_commit_callbacks(execute=True):
        study_ready.send(sender=type(study), study_id=study.pk)

    assert Delivery.objects.filter(study=study).count() == 3
    assert len(pacs.received()) == files


def test_declined_study_still_gets_its_pdf(make_ready, storescp, destination):
    pacs = storescp()
    destination(pacs.port)

    study = make_ready(ml_adapter.OutsideModelScope("not a head CT"))

    (delivery,) = Delivery.objects.filter(study=study)
    assert (delivery.kind, delivery.state) == ("pdf", DeliveryState.SENT)
    (pdf,) = pacs.received()
    assert pdf.SOPClassUID == EncapsulatedPDFStorage
    assert pdf.EncapsulatedDocument.startswith(b"%PDF")


@pytest.fixture
def sweep(eager_celery, django_capture_on_commit_callbacks):
    """Run the beat's sweep task as beat would, and the sends it enqueues."""

    def run() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return delivery_sweep_task.apply().result

    return run


def _due_now(study) -> None:
    """Time passes: every pending delivery's next attempt is due."""
    Delivery.objects.filter(study=study, state=DeliveryState.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_destination_down_is_retried_with_backoff_then_failed_with_reason(
    make_ready, destination, settings, as_radiologist, sweep
):
    settings.DICOM_SEND_ATTEMPTS = 3
    settings.DICOM_SEND_RETRY_SECONDS = 30
    port = free_port()  # nothing listens there
    destination(port)

    before = timezone.now()
    study = make_ready()

    pdf = Delivery.objects.get(study=study, kind="pdf")
    assert pdf.state == DeliveryState.PENDING and pdf.attempts == 1
    assert f"connection refused by 127.0.0.1:{port}" in pdf.peer_status
    wait = (pdf.next_attempt_at - before).total_seconds()
    assert 29 <= wait <= 60  # the first wait: DICOM_SEND_RETRY_SECONDS
    # Not due yet: the sweep leaves it alone.
    sweep()
    pdf.refresh_from_db()
    assert pdf.attempts == 1

    _due_now(study)
    sweep()
    pdf.refresh_from_db()
    assert pdf.attempts == 2 and pdf.state == DeliveryState.PENDING
    second_wait = (pdf.next_attempt_at - timezone.now()).total_seconds()
    assert 55 <= second_wait <= 60  # doubled

    _due_now(study)
    sweep()
    for d in Delivery.objects.filter(study=study):
        assert (d.state, d.attempts) == (DeliveryState.FAILED, 3)
        assert "connection refused" in d.peer_status and d.next_attempt_at is None

    page = as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk]))
    text = page.content.decode()
    assert "Failed" in text and "connection refused" in text
    assert 'data-testid="delivery-resend"' not in text  # admins only


def test_destination_back_up_is_delivered_by_the_sweep(
    make_ready, destination, storescp, sweep
):
    port = free_port()
    destination(port)
    study = make_ready()
    assert not Delivery.objects.filter(study=study, state=DeliveryState.SENT).exists()

    pacs = storescp(port=port)  # the PACS is back
    _due_now(study)
    assert sweep() == 3

    sent = Delivery.objects.filter(study=study, state=DeliveryState.SENT)
    assert sent.count() == 3 and {d.attempts for d in sent} == {2}
    kinds = {ds.SOPClassUID for ds in pacs.received()}
    assert kinds == {
        EncapsulatedPDFStorage,
        SecondaryCaptureImageStorage,
        COMPREHENSIVE_3D_SR,
    }


def test_admin_sends_failed_deliveries_again_audited(
    make_ready,
    destination,
    storescp,
    settings,
    as_admin,
    admin,
    django_capture_on_commit_callbacks,
):
    settings.DICOM_SEND_ATTEMPTS = 1
    port = free_port()
    destination(port)
    study = make_ready()
    assert Delivery.objects.filter(study=study, state=DeliveryState.FAILED).count() == 3
    page = as_admin.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert 'data-testid="delivery-resend"' in page.content.decode()

    pacs = storescp(port=port)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_admin.post(
            reverse("dicomnode-results:delivery-resend", args=[study.pk]), follow=True
        )

    assert "3 failed deliveries queued to be sent again" in response.content.decode()
    assert Delivery.objects.filter(study=study, state=DeliveryState.SENT).count() == 3
    assert len(pacs.received()) >= 3
    entry = AuditEntry.objects.get(action="dicomnode.delivery_resend")
    assert entry.actor == admin and entry.object_id == str(study.pk)


def test_send_again_is_refused_to_others(
    make_ready, destination, as_radiologist, as_outsider, as_admin
):
    destination(free_port())
    study = make_ready()
    url = reverse("dicomnode-results:delivery-resend", args=[study.pk])
    assert as_radiologist.post(url).status_code == 403
    assert as_outsider.post(url).status_code == 403
    missing = reverse("dicomnode-results:delivery-resend", args=[study.pk + 999])
    assert as_admin.post(missing).status_code == 404
    assert as_admin.get(url).status_code == 405
    assert not AuditEntry.objects.filter(action="dicomnode.delivery_resend").exists()


def test_new_reading_sends_a_new_revision_with_the_reading(
    make_ready,
    hemorrhage_model,
    storescp,
    destination,
    radiologist,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    pacs = storescp()
    destination(pacs.port)
    study = make_ready()
    (first_sr,) = pacs.by_sop_class(COMPREHENSIVE_3D_SR)

    with django_capture_on_commit_callbacks(execute=True):
        review = diagnosis_services.review_submit(
            study=study,
            reviewer=radiologist,
            final_label="normal",
            impression="No bleed; the AI marked calcification.",
        )

    revised = Delivery.objects.filter(study=study, revision=f"review-{review.pk}")
    assert {d.kind for d in revised} == {"pdf", "sc", "sr"}
    assert {d.state for d in revised} == {DeliveryState.SENT}
    srs = pacs.by_sop_class(COMPREHENSIVE_3D_SR)
    (second_sr,) = [ds for ds in srs if ds.SOPInstanceUID != first_sr.SOPInstanceUID]
    items = sr_items(second_sr)
    assert "No bleed; the AI marked calcification." in items["Impression"]
    assert (
        second_sr.PreliminaryFlag == "FINAL"
        and first_sr.PreliminaryFlag == "PRELIMINARY"
    )
    # The reader's "absent" stands beside the AI's "suspected".
    codes = [
        item.ConceptCodeSequence[0].CodeMeaning
        for group in second_sr.ContentSequence
        for sub in group.get("ContentSequence", [])
        for item in sub.get("ContentSequence", [])
        if item.ValueType == "CODE"
        and item.ConceptNameCodeSequence[0].CodeMeaning == "Intracranial hemorrhage"
    ]
    assert sorted(codes) == ["Absent", "Suspected"]


def test_panel_shows_clinicians_only_what_was_sent(
    make_ready, storescp, destination, as_clinician, as_radiologist
):
    pacs = storescp()
    destination(pacs.port)
    study = make_ready()
    url = reverse("diagnosis:study-detail", args=[study.pk])

    clinician_page = as_clinician.get(url).content.decode()
    assert "Sent to PACS" in clinician_page
    assert "Report (Encapsulated PDF) sent to Hospital PACS" in clinician_page
    assert "0x0000" not in clinician_page
    reader_page = as_radiologist.get(url).content.decode()
    assert reader_page.count('data-testid="delivery"') == 3
    assert "PACS1" in reader_page


@pytest.fixture
def refusing_peer():
    """A pynetdicom Storage SCP (free port, own thread) that answers every C-STORE
    with 0xA700 Out of Resources, as a full PACS does."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    ae = AE(ae_title="FULLPACS")
    ae.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port),
        block=False,
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA700)],
    )
    yield port
    server.shutdown()


def test_peer_refusal_is_recorded_with_its_status(
    make_ready, destination, refusing_peer, settings
):
    settings.DICOM_SEND_ATTEMPTS = 1
    destination(refusing_peer, ae_title="FULLPACS")
    study = make_ready()
    for d in Delivery.objects.filter(study=study):
        assert d.state == DeliveryState.FAILED
        assert d.peer_status == "0xA700 Refused: Out of Resources"


def test_association_rejected_by_orthanc_is_recorded(
    make_ready, destination, orthanc, settings
):
    # Orthanc checks the called AE title: a destination registered with the wrong
    # one is rejected at association, and says so.
    settings.DICOM_SEND_ATTEMPTS = 1
    destination(orthanc.dicom_port, ae_title="NOTORTHANC")
    study = make_ready()
    pdf = Delivery.objects.get(study=study, kind="pdf")
    assert pdf.state == DeliveryState.FAILED
    assert pdf.peer_status.startswith("Association rejected")
    assert orthanc.get("/instances") == []
