"""The PDF of a study uploaded with two series says on which series each of the
reader's measurements was made (issue 17's series picker)."""

from django.urls import reverse

from diagnosis import services
from diagnosis.models import Study, StudyStatus
from diagnosis.tasks import series_read_task, study_process_task
from diagnosis.tests import conftest as diagnosis_fixtures

from .conftest import uploads_of
from .test_pdf import download, pdf_text

two_series_dir = diagnosis_fixtures.two_series_dir


def test_the_pdf_names_the_series_of_each_measurement(
    as_clinician,
    clinician,
    radiologist,
    two_series_dir,
    active_model,
    stub_analysis,
    monkeypatch,
):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    stub_analysis.next = diagnosis_fixtures.two_series_analysis()
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(two_series_dir)}
    )
    study = Study.objects.get(uploaded_by=clinician)
    study_process_task.apply(args=[study.pk])
    series_read_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == StudyStatus.READY
    services.review_submit(
        study=study,
        reviewer=radiologist,
        final_label="normal",
        measurements=[
            {
                "kind": "length",
                "series": 1,
                "slice": 2,
                "points": [[5, 10], [35, 10]],
                "mm": 24.0,
            },
            {
                "kind": "probe",
                "series": 0,
                "slice": 5,
                "points": [[20, 3]],
                "value": 150.0,
            },
        ],
    )

    text = " ".join(pdf_text(download(as_clinician, study)).split())

    assert 'Series 2 "BRAIN 5MM", slice 3: length 24.0 mm' in text, text
    assert (
        'Series 3 "THIN 2.5MM" (analysed by the AI), slice 6: value 150 HU' in text
    ), text
