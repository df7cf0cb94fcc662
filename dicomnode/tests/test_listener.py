"""The DICOM listener through real peers (dcmtk's echoscu and storescu): who may
associate, what a sent series becomes, and how resent, late and corrupt instances
are handled."""

from pathlib import Path

import pydicom
import pytest

from accounts.models import AuditEntry, AuditOutcome
from diagnosis.models import Arrival, SeriesStatus, Study, StudyStatus
from diagnosis.services import series_read_pending, study_process
from dicomnode.models import CollectionState, DicomNode, IncomingStudy

from .conftest import DCMTK, echoscu, fake_analysis, series, storescu, wait_for

pytestmark = [DCMTK, pytest.mark.slow]

PHANTOM = Path("/work/shared/data/dicom-head-phantom")


def queued_study(timeout=30.0) -> Study | None:
    return wait_for(
        lambda: Study.objects.filter(arrival=Arrival.DICOM).first(), timeout=timeout
    )


def test_echo_succeeds_for_a_registered_node(listener):
    result = echoscu(listener.port)
    assert result.returncode == 0, result.stderr


def test_unregistered_ae_title_is_refused_at_association_and_audited(listener):
    echo = echoscu(listener.port, aet="INTRUDER")
    assert echo.returncode != 0
    assert "rejected" in (echo.stdout + echo.stderr).lower()
    entry = AuditEntry.objects.filter(action="dicom.association_refused").first()
    assert entry is not None and entry.outcome == AuditOutcome.DENIED
    assert entry.detail["calling_ae"] == "INTRUDER"
    assert entry.detail["address"] == "127.0.0.1"
    assert entry.detail["reason"] == "calling AE title not registered"


def test_node_with_another_host_or_deactivated_is_refused(listener, scanner):
    DicomNode.objects.filter(pk=scanner.pk).update(host="10.9.9.9")
    assert echoscu(listener.port).returncode != 0
    DicomNode.objects.filter(pk=scanner.pk).update(host="127.0.0.1", active=False)
    assert echoscu(listener.port).returncode != 0
    reasons = list(
        AuditEntry.objects.filter(action="dicom.association_refused").values_list(
            "detail__reason", flat=True
        )
    )
    assert sorted(reasons) == [
        "address 127.0.0.1 is not the node's host",
        "node deactivated",
    ]
    DicomNode.objects.filter(pk=scanner.pk).update(active=True)
    assert echoscu(listener.port).returncode == 0


def test_sent_series_becomes_one_queued_study_of_the_node_site(
    listener, scanner, synthetic_series, stub_analysis, active_model
):
    result = storescu(listener.port, synthetic_series)
    assert result.returncode == 0, result.stderr
    study = queued_study()
    assert study is not None
    assert study.status == StudyStatus.QUEUED
    assert study.slice_count == 8
    assert study.site == scanner.site
    assert study.received_from == "SCANNER1"
    assert study.uploaded_by is None
    assert study.patient_id == "MRN-0042"
    assert study.acquired_at is not None and study.last_instance_at is not None
    incoming = IncomingStudy.objects.get()
    assert incoming.state == CollectionState.QUEUED and incoming.study == study
    # The received copies are gone once they are stored as the study's files.
    assert wait_for(
        lambda: not [p for p in Path(listener_incoming()).rglob("*") if p.is_file()]
    )
    assert AuditEntry.objects.filter(action="study.receive", object_id=study.pk)
    # And the worker makes it ready, as it does an upload.
    study_process(study_id=study.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.READY


def listener_incoming():
    from django.conf import settings

    return settings.DICOM_INCOMING_DIR


def test_two_associations_for_one_study_merge_into_one(listener, synthetic_series):
    first = storescu(listener.port, synthetic_series[:4])
    second = storescu(listener.port, synthetic_series[4:])
    assert first.returncode == second.returncode == 0
    study = queued_study()
    assert study is not None and study.slice_count == 8
    assert Study.objects.count() == 1


def test_resent_instance_is_stored_once(listener, synthetic_series):
    result = storescu(listener.port, synthetic_series + synthetic_series[:3])
    assert result.returncode == 0, result.stderr
    study = queued_study()
    assert study is not None and study.slice_count == 8
    assert IncomingStudy.objects.get().instances.count() == 8
    assert study.files.count() == 8


def test_corrupt_instance_is_refused_and_the_rest_is_processed(
    listener, synthetic_series, tmp_path
):
    ds = pydicom.dcmread(synthetic_series[0])
    broken = tmp_path / "broken.dcm"
    ds.SOPInstanceUID = ds.SOPInstanceUID[:60] + ".99"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(broken, enforce_file_format=True)
    # A scanner goes on after a refused instance (dcmtk's default is to halt).
    result = storescu(listener.port, [broken, *synthetic_series], extra=["-nh", "-v"])
    said = result.stdout + result.stderr
    assert said.count("Store Response (Error: CannotUnderstand)") == 1, said
    assert said.count("Store Response (Success)") == 8, said
    study = queued_study()
    assert study is not None and study.slice_count == 8
    entry = AuditEntry.objects.get(action="dicom.instance_refused")
    assert entry.detail["reason"] == "pixel data cut short"


def test_instances_after_queueing_join_the_unread_study(
    listener, tmp_path, stub_analysis, active_model
):
    files = series(tmp_path / "s", slices=10, uid_seed="late")
    storescu(listener.port, files[:6])
    study = queued_study()
    assert study is not None and study.slice_count == 6
    study_process(study_id=study.pk)
    storescu(listener.port, files[6:])
    merged = wait_for(
        lambda: Study.objects.filter(pk=study.pk, slice_count=10).first(), timeout=30
    )
    assert merged is not None and merged.status == StudyStatus.QUEUED
    assert Study.objects.count() == 1


def test_instances_after_a_reading_make_a_study_of_their_own(
    listener, tmp_path, stub_analysis, active_model
):
    files = series(tmp_path / "s", slices=10, uid_seed="late-read")
    storescu(listener.port, files[:6])
    study = queued_study()
    Study.objects.filter(pk=study.pk).update(reviewed=True)
    storescu(listener.port, files[6:])
    late = wait_for(lambda: Study.objects.exclude(pk=study.pk).first(), timeout=30)
    assert late is not None and late.slice_count == 4
    assert Study.objects.get(pk=study.pk).slice_count == 6


def test_nothing_usable_fails_the_collection_with_a_reason(listener, tmp_path):
    ds = pydicom.dcmread(series(tmp_path / "s", slices=1, uid_seed="sr")[0])
    ds.Modality = "SR"
    path = tmp_path / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    storescu(listener.port, [path])
    failed = wait_for(
        lambda: IncomingStudy.objects.filter(state=CollectionState.FAILED).first()
    )
    assert failed is not None
    assert "SR" in failed.error_message
    assert Study.objects.count() == 0


@pytest.mark.skipif(
    not (PHANTOM / "std-brain-5mm").is_dir(),
    reason=f"the DICOM head phantom is not here ({PHANTOM})",
)
def test_phantom_series_with_its_localizer_is_one_study(listener):
    # The images a scanner sends; DIRFILE (the media directory) is not one.
    slices = sorted((PHANTOM / "std-brain-5mm").glob("I*"))
    localizer = sorted((PHANTOM / "localizer").glob("I*"))
    result = storescu(listener.port, slices + localizer)
    assert result.returncode == 0, result.stderr
    study = queued_study(timeout=60)
    assert study is not None
    assert study.status == StudyStatus.QUEUED
    reasons = " ".join(r["reason"] for r in study.rejected_files)
    assert "localizer" in reasons.lower()
    assert study.slice_count == len(slices)
    assert study.site is not None and study.received_from == "SCANNER1"


def test_a_node_that_sends_a_study_per_association_has_it_completed_on_release(
    listener, scanner, synthetic_series, settings
):
    # A quiet time far longer than the test: only the release can complete it.
    settings.DICOM_QUIET_SECONDS = 600
    result = storescu(listener.port, synthetic_series[:4])
    assert result.returncode == 0, result.stderr
    assert queued_study(timeout=2) is None  # this node waits for the quiet time
    DicomNode.objects.filter(pk=scanner.pk).update(complete_on_release=True)
    result = storescu(listener.port, synthetic_series[4:])
    assert result.returncode == 0, result.stderr
    study = queued_study(timeout=15)
    assert study is not None and study.slice_count == 8
    assert IncomingStudy.objects.get().state == CollectionState.QUEUED


def test_a_second_series_sent_later_joins_the_study_for_viewing(
    listener, tmp_path, stub_analysis, active_model
):
    """A scanner sends the brain series, then a bone-kernel series of the same study
    in another association: one study, analysed on its brain series, with the bone
    series kept and read for the viewer."""
    brain = series(tmp_path / "brain", slices=10, uid_seed="two-a")
    bone = series(tmp_path / "bone", slices=6, uid_seed="two-b")
    study_uid = pydicom.dcmread(brain[0], stop_before_pixels=True).StudyInstanceUID
    for path in bone:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        ds.SeriesNumber, ds.SeriesDescription = 3, "BONE"
        ds.save_as(path, enforce_file_format=True)
    assert storescu(listener.port, brain).returncode == 0
    assert storescu(listener.port, bone).returncode == 0

    study = wait_for(
        lambda: Study.objects.filter(other_series__isnull=False).first(), timeout=30
    )
    assert study is not None and Study.objects.count() == 1
    assert study.slice_count == 10  # the AI's series: the one with most slices
    other = study.other_series.get()
    assert (other.label, other.slice_count, other.status) == (
        '3 "BONE"',
        6,
        SeriesStatus.PENDING,
    )
    stub_analysis.next = fake_analysis(slices=10)
    outcome = study_process(study_id=study.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.READY, (
        outcome,
        study.status,
        study.error_message,
    )
    assert series_read_pending(study_id=study.pk) == 1
    other.refresh_from_db()
    assert other.status == SeriesStatus.READY
