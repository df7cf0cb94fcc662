"""A study the model was not made for (not a head CT): the real Celery task, run
eagerly, with the model stubbed at the ml adapter raising OutsideModelScope. The
study is ready to read without AI support, says why, and waits below every study
the AI did read."""

import re

import pytest
from django.urls import reverse

from diagnosis import ml_adapter
from diagnosis.models import AIResult, Study, StudyStatus
from diagnosis.tasks import study_process_task

from .conftest import fake_analysis, uploads_of

REASON = (
    "it does not look like an axial head CT (no slice shows brain tissue); the "
    "model reads head CT only"
)


@pytest.fixture
def analysed(as_clinician, active_model, stub_analysis, monkeypatch, tmp_path):
    """Upload a synthetic series and run its task with `answer` (an Analysis or an
    exception) as the model's; returns the study."""
    from ml.synthetic import make_phantom, write_dicom_series

    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)

    def run(answer, *, name: str, seed: int) -> Study:
        folder = tmp_path / name
        write_dicom_series(
            make_phantom(size=48, slices=8, seed=seed), folder, patient_id=f"MRN-{name}"
        )
        as_clinician.post(
            reverse("diagnosis:study-upload"), {"files": uploads_of(folder)}
        )
        study = Study.objects.order_by("-pk").first()
        stub_analysis.next = answer
        assert study_process_task.apply(args=[study.pk]).result == "done"
        study.refresh_from_db()
        return study

    return run


def text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_study_outside_the_model_scope_is_ready_with_the_reason(
    analysed, as_clinician, as_radiologist
):
    study = analysed(ml_adapter.OutsideModelScope(REASON), name="chest", seed=1)

    assert study.status == StudyStatus.READY and study.error_message == ""
    assert not AIResult.objects.filter(study=study).exists()
    page = text(as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk])))
    assert f"Outside what the model was trained for: {REASON}." in page
    assert "The analysis failed" not in page and "Stroke probability" not in page
    assert "Agree with the AI" not in page  # nothing to agree with; a reading is
    assert "Save reading" in page
    # The slices can still be read (the volume was kept for the viewer).
    image = as_radiologist.get(reverse("diagnosis:slice-image", args=[study.pk, 4]))
    assert image.status_code == 200
    for client in (as_radiologist, as_clinician):
        listing = text(client.get(reverse("diagnosis:study-list")))
        assert f"Outside what the model was trained for {REASON}" in listing


def test_study_outside_the_model_scope_waits_below_studies_the_ai_read(
    analysed, api_radiologist, as_radiologist
):
    # Uploaded first, so waiting time alone would put it on top.
    outside = analysed(ml_adapter.OutsideModelScope(REASON), name="chest", seed=1)
    normal = analysed(fake_analysis("normal", 0.05), name="normal", seed=2)
    bleed = analysed(fake_analysis("stroke", 0.9), name="bleed", seed=3)

    rows = api_radiologist.get(reverse("api:study-list")).json()["results"]
    assert [r["id"] for r in rows] == [bleed.pk, normal.pk, outside.pk]
    assert rows[2]["outside_scope_reason"] == REASON and rows[2]["ai_label"] == ""
    body = as_radiologist.get(reverse("diagnosis:study-list")).content.decode()
    assert body.index("MRN-bleed") < body.index("MRN-normal") < body.index("MRN-chest")
    assert "3 to review" in body  # a radiologist still reads it


def test_reprocessing_a_study_the_model_declined_clears_the_reason(
    analysed, admin, as_radiologist, stub_analysis
):
    from diagnosis import services

    study = analysed(ml_adapter.OutsideModelScope(REASON), name="chest", seed=1)
    stub_analysis.next = fake_analysis("stroke", 0.9)
    services.study_reprocess(study=study, by=admin)
    study_process_task.apply(args=[study.pk])

    study.refresh_from_db()
    assert study.outside_scope_reason == "" and study.ai_label == "stroke"
    page = text(as_radiologist.get(reverse("diagnosis:study-detail", args=[study.pk])))
    assert "Outside what the model was trained for" not in page
    assert "Suspected stroke (hemorrhagic) · 90%" in page
