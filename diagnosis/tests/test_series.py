"""A study uploaded with several series (issue 17's series picker): the AI reads the
series chosen at upload, the others are kept, read by the worker for display only,
listed on the study page and served to the viewer with ?series=, checked, audited
and cached as the analysed series is. Through the upload form and the real task."""

import html
import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from diagnosis import recovery, services, storage
from diagnosis.models import Series, SeriesStatus, Study, StudyFile, StudyStatus
from diagnosis.tasks import series_read_task, study_process_task, study_sweep_task

from .conftest import fake_analysis, series_hu, two_series_analysis, uploads_of

UPLOAD = reverse("diagnosis:study-upload")


@pytest.fixture
def upload_two_series(
    as_clinician, clinician, two_series_dir, active_model, stub_analysis, monkeypatch
):
    """Upload both series through the form as the clinician, then run the real
    processing task (the model stubbed at the adapter)."""
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    stub_analysis.next = two_series_analysis()

    def upload(process: bool = True) -> Study:
        response = as_clinician.post(UPLOAD, {"files": uploads_of(two_series_dir)})
        assert response.status_code == 302, response.content.decode()[:2000]
        study = Study.objects.get(uploaded_by=clinician)
        if process:
            analyse(study)
        return study

    return upload


def analyse(study: Study) -> None:
    """What the worker does with the study: the analysis, then (a task of its own,
    sent once the study is ready) the reading of its other series."""
    study_process_task.apply(args=[study.pk])
    series_read_task.apply(args=[study.pk])
    study.refresh_from_db()


def slice_data(client, study, **params):
    return client.get(reverse("diagnosis:slice-data", args=[study.pk]), params)


def as_volume(response, shape) -> np.ndarray:
    return np.frombuffer(response.content, dtype="<i2").reshape(shape)


def page_text(client, study) -> str:
    content = client.get(reverse("diagnosis:study-detail", args=[study.pk]))
    return html.unescape(re.sub(r"<[^>]+>", "", content.content.decode()))


def viewer_meta(client, study) -> dict:
    content = client.get(reverse("diagnosis:study-detail", args=[study.pk]))
    found = re.search(
        r'<script id="viewer-meta" type="application/json">(.*?)</script>',
        content.content.decode(),
        re.S,
    )
    return json.loads(found.group(1))


def test_the_ai_reads_the_chosen_series_and_the_other_is_kept_and_viewable(
    upload_two_series, stub_analysis, as_clinician
):
    study = upload_two_series()

    assert study.status == StudyStatus.READY
    # The AI read the series with most slices, and only it.
    assert stub_analysis.calls == 1
    assert np.array_equal(stub_analysis.load_result.volume, series_hu(3))
    assert (study.slice_count, study.dicom_metadata["series_number"]) == (20, 3)
    # Nothing was set aside: the other series is the study's, kept with it.
    assert study.rejected_files == []
    assert StudyFile.objects.filter(study=study).count() == 30
    other = Series.objects.get(study=study)
    assert (other.index, other.label, other.slice_count, other.status) == (
        1,
        '2 "BRAIN 5MM"',
        10,
        SeriesStatus.READY,
    )
    assert other.slice_thickness_mm == 5.0
    assert other.dicom_metadata["pixel_spacing_mm"] == [0.8, 0.8]
    stored = np.load(storage.volume_path(study.pk, series=1))
    assert np.array_equal(stored, series_hu(2))

    text = page_text(as_clinician, study)
    assert '3 "THIN 2.5MM": 20 slices, 2.5 mm thick — analysed by the AI' in text
    assert '2 "BRAIN 5MM": 10 slices, 5 mm thick — viewable, not analysed' in text
    assert "set aside" not in text

    meta = viewer_meta(as_clinician, study)
    analysed, extra = meta["series"]
    assert analysed | {"encoding": None, "window": None, "dataUrl": None} == {
        "thicknessWords": "2.5",
        "index": 0,
        "label": '3 "THIN 2.5MM"',
        "analysed": True,
        "shape": [20, 32, 32],
        "encoding": None,
        "spacing": [0.5, 0.5],
        "thickness": 2.5,
        "orientation": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
        # Each slice's level (mm), for opening another series at the same one.
        "positions": [2.5 * k for k in range(20)],
        "window": None,
        "dataUrl": None,
    }
    assert (extra["index"], extra["analysed"], extra["shape"]) == (
        1,
        False,
        [10, 24, 40],
    )
    assert (extra["spacing"], extra["thickness"]) == ([0.8, 0.8], 5.0)
    assert extra["positions"] == [5.0 * k for k in range(10)]
    assert extra["orientation"] == {
        "left": "P",
        "right": "A",
        "top": "R",
        "bottom": "L",
    }


def test_slice_data_of_another_series_is_its_volume_in_hu_audited_and_cached(
    upload_two_series, as_clinician
):
    study = upload_two_series()

    response = slice_data(as_clinician, study, series=1, start=0, count=10)
    assert response.status_code == 200
    assert response["X-Slice-Count"] == "10"
    assert "private" in response["Cache-Control"]
    assert np.array_equal(as_volume(response, (10, 24, 40)), series_hu(2))
    entry = AuditEntry.objects.filter(action="study.slice_data_view").last()
    assert entry.detail == {"slices": [0, 9], "series": 1}
    assert entry.object_id == str(study.pk)

    # The default is the analysed series, as before; each series has its own ETag.
    analysed = slice_data(as_clinician, study, start=4, count=2)
    assert np.array_equal(as_volume(analysed, (2, 32, 32)), series_hu(3)[4:6])
    assert analysed["ETag"] != slice_data(as_clinician, study, series=1, start=4,
                                          count=2)["ETag"]  # fmt: skip
    again = as_clinician.get(
        reverse("diagnosis:slice-data", args=[study.pk]),
        {"series": 1, "start": 0, "count": 10},
        HTTP_IF_NONE_MATCH=response["ETag"],
    )
    assert again.status_code == 304


def test_an_outsider_gets_404_for_another_series_and_the_refusal_is_audited(
    upload_two_series, as_outsider, outsider
):
    study = upload_two_series()

    response = slice_data(as_outsider, study, series=1, start=0)

    assert response.status_code == 404
    refusal = AuditEntry.objects.get(action="access.denied")
    assert (refusal.actor, refusal.object_id) == (outsider, str(study.pk))
    assert not AuditEntry.objects.filter(action="study.slice_data_view").exists()


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("x", 400, "Give the series as ?series=N: 0 for the analysed series"),
        ("-1", 400, "Give the series as ?series=N"),
        ("1.5", 400, "Give the series as ?series=N"),
        ("123456789", 400, "Give the series as ?series=N"),
        ("2", 404, "This study has no viewable series 2; its series are 0, 1 (0 is"),
    ],
)
def test_a_bad_series_value_is_refused_with_a_message(
    upload_two_series, as_clinician, value, status, message
):
    study = upload_two_series()

    response = slice_data(as_clinician, study, series=value, start=0)

    assert response.status_code == status
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith(message)
    assert "Traceback" not in response.content.decode()


def test_a_series_that_cannot_be_read_says_why_and_the_study_is_ready(
    upload_two_series, as_clinician
):
    study = upload_two_series(process=False)
    other = Series.objects.get(study=study)
    for row in StudyFile.objects.filter(study=study, sha256__in=other.files):
        (storage.uploads_root() / row.storage_name).unlink()  # lost from the disk

    analyse(study)

    other.refresh_from_db()
    assert study.status == StudyStatus.READY and study.ai_label == "stroke"
    assert other.status == SeriesStatus.FAILED
    assert other.error_message.startswith("Could not be read: no usable slices")
    assert "S2-IM0000.dcm: no such file or folder" in other.error_message
    assert str(storage.uploads_root()) not in other.error_message
    assert '2 "BRAIN 5MM": 10 slices, 5 mm thick — not viewable: Could not be read' in (
        page_text(as_clinician, study)
    )
    assert [s["index"] for s in viewer_meta(as_clinician, study)["series"]] == [0]
    assert slice_data(as_clinician, study, series=1, start=0).status_code == 404


def test_series_beyond_the_pixel_budget_are_set_aside_never_the_analysed_one(
    upload_two_series, settings
):
    # Room for the analysed series (20 x 32 x 32) and a little more, not for the
    # other (10 x 24 x 40): a hostile upload cannot amplify with extra series.
    settings.UPLOAD_MAX_STUDY_PIXELS = 20 * 32 * 32 + 1000

    study = upload_two_series()

    assert study.status == StudyStatus.READY and study.slice_count == 20
    assert not Series.objects.filter(study=study).exists()
    assert StudyFile.objects.filter(study=study).count() == 20
    reasons = {r["reason"] for r in study.rejected_files}
    assert len(study.rejected_files) == 10
    assert reasons == {
        'series 2 "BRAIN 5MM" set aside: with its 10 slices of 40x24 pixels the '
        "study would have 30080 pixels; at most 21480 pixels are kept per study "
        "(the analysed series and the other series kept come first)"
    }


def test_measurements_record_their_series_and_are_checked_against_it(
    upload_two_series, radiologist
):
    study = upload_two_series()
    length = {"kind": "length", "points": [[0, 0], [15, 0]], "mm": 12.0}

    review = services.review_submit(
        study=study,
        reviewer=radiologist,
        final_label="normal",
        measurements=[length | {"series": 1, "slice": 9}, length | {"slice": 19}],
    )

    assert review.measurement_words == [
        'Series 2 "BRAIN 5MM", slice 10: length 12.0 mm',
        'Series 3 "THIN 2.5MM" (analysed by the AI), slice 20: length 12.0 mm',
    ]
    with pytest.raises(ValidationError, match="slice 11, which series 1 does not"):
        services.review_submit(
            study=study,
            reviewer=radiologist,
            final_label="normal",
            measurements=[length | {"series": 1, "slice": 10}],
        )
    with pytest.raises(ValidationError, match="on series 4, which this study"):
        services.review_submit(
            study=study,
            reviewer=radiologist,
            final_label="normal",
            measurements=[length | {"series": 4, "slice": 0}],
        )


PHANTOM = Path("/work/shared/data/dicom-head-phantom")


@pytest.mark.skipif(
    not PHANTOM.is_dir(), reason=f"{PHANTOM} is absent (optional, never committed)"
)
def test_a_real_philips_exam_keeps_its_5mm_series_beside_the_tilted_one(
    as_clinician, clinician, active_model, stub_analysis, monkeypatch, tmp_path
):
    """The phantom's two series of one exam (their StudyInstanceUIDs differ in the
    shared copy; made one here): the tilted 2.5 mm series has most slices and is
    analysed, the 5 mm brain series is kept and read for viewing."""
    tilted = sorted((PHANTOM / "tilted-2.5mm").glob("I*"))
    brain = sorted((PHANTOM / "std-brain-5mm").glob("I*"))
    study_uid = pydicom.dcmread(tilted[0], stop_before_pixels=True).StudyInstanceUID
    files = []
    for path in tilted + brain:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        out = tmp_path / f"{path.parent.name}-{path.name}.dcm"
        ds.save_as(out)
        files.append(SimpleUploadedFile(out.name, out.read_bytes()))
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    stub_analysis.next = fake_analysis(slices=len(tilted))

    as_clinician.post(UPLOAD, {"files": files})
    study = Study.objects.get(uploaded_by=clinician)
    analyse(study)

    assert study.status == StudyStatus.READY and study.rejected_files == []
    assert study.slice_count == len(tilted) == 54
    assert study.analysed_series_label == '201 "STEREOTAXIS"'
    other = Series.objects.get(study=study)
    assert (other.label, other.slice_count, other.status) == (
        '201 "STD BRAIN 5MM"',
        28,
        SeriesStatus.READY,
    )
    volume = np.load(storage.volume_path(study.pk, series=1), mmap_mode="r")
    assert volume.shape == (28, 512, 512) and volume.min() == -1024
    response = slice_data(as_clinician, study, series=1, start=14, count=1)
    assert np.array_equal(as_volume(response, (1, 512, 512)), volume[14:15])
    text = page_text(as_clinician, study)
    assert '201 "STD BRAIN 5MM": 28 slices, 5 mm thick — viewable' in text


def test_the_study_is_ready_before_its_other_series_are_read(
    upload_two_series, as_clinician, monkeypatch, django_capture_on_commit_callbacks
):
    """The stroke team's alert and the worklist go with the study's ready; series for
    viewing only follow in a task of their own, sent once the study is ready."""
    sent = []
    monkeypatch.setattr("diagnosis.tasks.series_read_task.delay", sent.append)
    study = upload_two_series(process=False)
    with django_capture_on_commit_callbacks(execute=True):
        study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    other = Series.objects.get(study=study)
    assert (study.status, other.status) == (StudyStatus.READY, SeriesStatus.PENDING)
    assert sent == [study.pk]
    assert "being read for viewing" in page_text(as_clinician, study)
    assert slice_data(as_clinician, study, series=1, start=0).status_code == 404

    assert series_read_task.apply(args=[study.pk]).result == 1
    other.refresh_from_db()
    assert other.status == SeriesStatus.READY
    assert slice_data(as_clinician, study, series=1, start=0).status_code == 200
    assert series_read_task.apply(args=[study.pk]).result == 0  # twice: nothing new


def test_a_study_without_other_series_sends_no_series_task(
    as_clinician,
    series_dir,
    active_model,
    stub_analysis,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    sent = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    monkeypatch.setattr("diagnosis.tasks.series_read_task.delay", sent.append)
    as_clinician.post(UPLOAD, {"files": uploads_of(series_dir)})
    study = Study.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == StudyStatus.READY and sent == []


def test_the_sweeper_sends_again_series_left_unread(
    upload_two_series, monkeypatch, django_capture_on_commit_callbacks, settings
):
    """A lost message or a dead worker leaves a ready study's series pending: past a
    lease, with their queue empty, the sweep sends them again; not before, and not
    while the queue still holds messages."""
    sent, waiting = [], {"length": 3}
    monkeypatch.setattr("diagnosis.tasks.series_read_task.delay", sent.append)
    monkeypatch.setattr(recovery, "series_queue_length", lambda: waiting["length"])
    study = upload_two_series(process=False)
    study_process_task.apply(args=[study.pk])

    def sweep() -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            return study_sweep_task.apply().result["series"]

    assert sweep() == []  # ready just now: its message may still be on its way
    lease = settings.PROCESSING_LEASE_SECONDS
    Study.objects.filter(pk=study.pk).update(
        ready_at=timezone.now() - timedelta(seconds=lease + 1)
    )
    assert sweep() == [] and sent == []  # the queue is busy: it waits its turn
    waiting["length"] = 0
    assert sweep() == [study.pk] and sent == [study.pk]
    series_read_task.apply(args=[study.pk])
    assert sweep() == []
