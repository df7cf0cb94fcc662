"""Processing a study through the real Celery task, with the model stubbed at the ml
adapter: claims, redelivery, failures, results, priority."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from diagnosis import services, storage
from diagnosis.models import AIResult, Study, StudyStatus
from diagnosis.tasks import study_process_task

from .conftest import fake_analysis, uploads_of


@pytest.fixture
def study(as_clinician, series_dir, monkeypatch):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    return Study.objects.get()


def run_task(study_id):
    return study_process_task.apply(args=[study_id])


def test_task_stores_the_result_and_makes_the_study_ready(
    study, active_model, stub_analysis
):
    outcome = run_task(study.pk)
    study.refresh_from_db()
    assert outcome.result == "done"
    assert study.status == StudyStatus.READY
    assert study.ready_at >= study.processing_started_at >= study.queued_at
    assert study.progress_done == study.progress_total == 8
    result = study.current_result
    assert (result.label, result.stroke_type, result.model_version) == (
        "stroke",
        "hemorrhagic",
        active_model,
    )
    assert result.probability == pytest.approx(0.91)
    probs = list(study.slices.values_list("probability", flat=True))
    assert probs[5] == pytest.approx(0.91) and len(probs) == 8
    heat = study.slices.get(index=5)
    assert (
        storage.heatmap_path(study.pk, heat.heatmap_name).read_bytes()[:4] == b"\x89PNG"
    )
    assert storage.volume_path(study.pk).exists()
    assert study.priority > 1.9  # suspected bleed with high probability


def test_redelivered_message_does_nothing(study, active_model, stub_analysis):
    run_task(study.pk)
    assert run_task(study.pk).result == "skipped"
    assert AIResult.objects.filter(study=study).count() == 1
    assert stub_analysis.calls == 1


def test_fresh_claim_of_another_worker_is_left_alone(
    study, active_model, stub_analysis
):
    assert services.study_claim(study_id=study.pk, token="other-worker")
    assert services.study_process(study_id=study.pk) == services.ProcessOutcome.BUSY
    assert stub_analysis.calls == 0


def test_dead_workers_claim_is_taken_over(study, active_model, stub_analysis):
    assert services.study_claim(study_id=study.pk, token="dead-worker")
    Study.objects.filter(pk=study.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert services.study_process(study_id=study.pk) == services.ProcessOutcome.DONE
    study.refresh_from_db()
    assert study.status == StudyStatus.READY and study.attempts == 2


def test_worker_that_lost_its_claim_stores_nothing(study, active_model, monkeypatch):
    def analyse_then_lose_claim(**kwargs):
        Study.objects.filter(pk=study.pk).update(claim_token="someone-else")
        return fake_analysis()

    monkeypatch.setattr("diagnosis.ml_adapter.analyse", analyse_then_lose_claim)
    assert services.study_process(study_id=study.pk) == services.ProcessOutcome.SKIPPED
    assert not AIResult.objects.exists()
    # Nor any file: its volume and overlays, written under its claim, are removed.
    folder = storage.study_dir(study.pk)
    left = [p.name for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    assert left == []


def test_model_error_fails_the_study_with_a_readable_reason(
    study, active_model, stub_analysis
):
    stub_analysis.next = RuntimeError("tensor shape mismatch")
    outcome = run_task(study.pk)
    study.refresh_from_db()
    assert outcome.result == "failed"
    assert study.status == StudyStatus.FAILED
    assert "The AI model failed on this study (RuntimeError)" in study.error_message
    assert stub_analysis.calls == 1  # not retried blindly


def test_unreadable_stored_file_fails_with_its_reason(
    study, active_model, stub_analysis
):
    for path in storage.uploads_root().rglob("*"):
        if path.is_file():
            path.write_bytes(b"damaged")
    run_task(study.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED
    assert "could not be analysed" in study.error_message


def test_no_active_model_says_so(study, stub_analysis):
    run_task(study.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED
    assert "No active AI model for CT studies" in study.error_message


def test_database_error_is_retried_not_recorded(study, active_model, monkeypatch):
    monkeypatch.setattr(
        "diagnosis.ml_adapter.analyse",
        lambda **kw: (_ for _ in ()).throw(OperationalError("db gone")),
    )
    with pytest.raises(OperationalError):
        services.study_process(study_id=study.pk)
    study.refresh_from_db()
    assert study.status == StudyStatus.PROCESSING  # left for the retry, not failed


def test_failed_study_page_shows_the_reason(study, as_clinician, stub_analysis):
    run_task(study.pk)
    body = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk])).content
    assert "No active AI model for CT studies" in body.decode()


def test_admin_reprocesses_a_failed_study(
    study,
    as_admin,
    active_model,
    stub_analysis,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    Study.objects.filter(pk=study.pk).update(status=StudyStatus.FAILED)
    queued = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(reverse("diagnosis:study-reprocess", args=[study.pk]))
    study.refresh_from_db()
    assert study.status == StudyStatus.QUEUED and queued == [study.pk]


def test_status_json_reports_progress(study, as_clinician):
    body = as_clinician.get(reverse("diagnosis:study-status", args=[study.pk])).json()
    assert body == {
        "status": "queued",
        "status_display": "Queued",
        "done": 0,
        "total": 8,
        "error": "",
    }
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "Waiting for an analysis worker" in page.text  # not an empty grey bar


@pytest.mark.parametrize(
    ("label", "probability", "stroke_type", "expected"),
    [
        ("stroke", 0.9, "hemorrhagic", 2.0),
        ("stroke", 0.9, "ischemic", 1.9),
        ("stroke", 0.6, "", 1.6),
        ("normal", 0.3, "", 0.3),
    ],
)
def test_priority_puts_sure_strokes_first(label, probability, stroke_type, expected):
    assert services.study_priority(
        label=label, probability=probability, stroke_type=stroke_type
    ) == pytest.approx(expected)


def test_a_result_next_to_its_threshold_reads_as_borderline(
    study, active_model, stub_analysis, as_clinician
):
    """A 49.6% probability below a 49.7% threshold must not read "50%" against
    "0.50", and a coin-flip "no stroke" must not look as sure as a clear one."""
    analysis = fake_analysis(label="normal", probability=0.496)
    analysis.threshold = 0.497
    stub_analysis.next = analysis
    run_task(study.pk)
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert 'data-testid="ai-probability">49.6%<' in page.text
    assert 'data-testid="ai-threshold">49.7% ' in page.text
    assert "No stroke suspected · 50% · borderline" in page.text
    assert 'class="badge text-bg-warning" data-ai-label="normal"' in page.text
