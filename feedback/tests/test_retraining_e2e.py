"""The feedback loop end to end with real training: a radiologist disagrees with the
AI, a second one confirms, an admin registers a data set and runs a retraining job
through the real task on synthetic phantoms, compares the candidate with the active
model on the locked split, promotes it, and the next study is analysed by it."""

import time

import pytest
from django.urls import reverse

from diagnosis import ml_adapter as study_adapter
from diagnosis import services as study_services
from diagnosis.tasks import study_process_task
from feedback.models import (
    FeedbackCase,
    JobStatus,
    ModelSource,
    ModelStatus,
    RetrainingJob,
    TrainingDataset,
)
from feedback.services import datasets as dataset_services
from feedback.tasks import dataset_index_task, retrain_task
from ml.synthetic import synthesize_dataset

from .conftest import unique_uploads

pytestmark = pytest.mark.slow
REAL_ANALYSE = study_adapter.analyse


@pytest.fixture
def phantom_dataset(
    as_admin, data_dirs, monkeypatch, django_capture_on_commit_callbacks
):
    """Register 18 tiny synthetic studies through the data set page, indexed at
    once; the retraining task is left for the test to run."""
    pytest.importorskip("keras")
    monkeypatch.setattr(
        "feedback.tasks.dataset_index_task.delay",
        lambda pk: dataset_index_task.apply(args=[pk]),
    )

    def register(name, *, seed, test_fraction):
        folder = data_dirs / "training-data" / name
        synthesize_dataset(
            folder, studies=18, seed=seed, size=64, slices=6, fmt="png", masks="none"
        )
        with django_capture_on_commit_callbacks(execute=True):
            as_admin.post(
                reverse("feedback:dataset-list"),
                {
                    "name": name,
                    "root": str(folder),
                    "test_fraction": test_fraction,
                    "seed": 0,
                },
            )
        dataset = TrainingDataset.objects.get(name=name)
        assert dataset.status == "ready", dataset.error_message
        return dataset

    return register


def test_feedback_to_promoted_model_end_to_end(
    as_admin,
    as_radiologist,
    as_radiologist2,
    make_ready_study,
    active_model,
    series_dir,
    clinician,
    phantom_dataset,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    queued = []
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", queued.append)

    # A radiologist disagrees; a second one confirms.
    study = make_ready_study(label="stroke")
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]), {"final_label": "normal"}
    )
    case = FeedbackCase.objects.get()
    as_radiologist2.post(reverse("feedback:case-confirm", args=[case.pk]))

    # The admin registers the data set and starts a job.
    dataset = phantom_dataset("phantoms", seed=4, test_fraction=0.2)
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(
            reverse("feedback:job-list"),
            {
                "dataset": dataset.pk,
                "architecture": "custom_cnn",
                "task": "binary",
                "epochs": 2,
                "seed": 0,
                "image_size": 64,
                "include_feedback": "on",
            },
        )
    job = RetrainingJob.objects.get()
    assert queued == [job.pk]

    started = time.perf_counter()
    outcome = retrain_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert outcome.result == "succeeded", job.error_message + job.log[-2000:]
    assert job.status == JobStatus.SUCCEEDED
    assert len(job.history) == 2 and job.history[-1]["val_auc"] is not None
    assert "feedback: 8 images of 1 confirmed case(s)" in job.log
    assert job.wall_seconds and job.peak_rss_mb
    print(f"retraining job: {time.perf_counter() - started:.1f} s")

    candidate = job.candidate
    assert candidate.source == ModelSource.TRAINING
    assert candidate.is_demo  # trained on the portal's phantoms
    assert candidate.status == ModelStatus.CANDIDATE
    assert candidate.data_fingerprint == job.data_fingerprint
    evaluation = candidate.evaluations.get(dataset=dataset)
    assert evaluation.ok, evaluation.error_message
    assert evaluation.report["studies"] == len(dataset.locked_test_groups)
    assert 0.0 <= evaluation.metric("auc") <= 1.0 and evaluation.roc["fpr"]
    # The stub active model has no file: its evaluation says so, and the gate
    # refuses to compare against nothing.
    assert "nonexistent" in active_model.evaluations.get().error_message
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert 'data-testid="comparison"' in page.text
    assert "Promotion gate: refuses" in page.text

    # The admin promotes with a reason; the next study uses the new model.
    monkeypatch.setattr(study_adapter, "analyse", REAL_ANALYSE)
    study_adapter._loaded.clear()
    promoted_at = time.perf_counter()
    as_admin.post(
        reverse("feedback:model-promote", args=[candidate.pk]),
        {"override_reason": "The active model is a stub without a file"},
    )
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.ACTIVE
    files = unique_uploads(series_dir, "after promotion")
    new_study = study_services.study_create(user=clinician, files=files).study
    study_process_task.apply(args=[new_study.pk])
    new_study.refresh_from_db()
    assert new_study.status == "ready", new_study.error_message
    assert new_study.current_result.model_version == candidate
    print(f"promotion to first result: {time.perf_counter() - promoted_at:.1f} s")


def test_a_stroke_type_job_gives_a_type_model_that_studies_then_use(
    as_admin,
    active_model,
    series_dir,
    clinician,
    phantom_dataset,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    """A type job trains a three-class model; promoted (over the gate: a phantom
    split is too small to vouch for it), the next study is analysed by it (a study
    prefers the stroke-type model of its modality) with the type probabilities
    shown."""
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", lambda pk: None)
    dataset = phantom_dataset("typed", seed=5, test_fraction=0.3)
    assert set(dataset.class_counts) == {"normal", "ischemic", "hemorrhagic"}
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(
            reverse("feedback:job-list"),
            {
                "dataset": dataset.pk,
                "architecture": "custom_cnn",
                "task": "type",
                "epochs": 1,
                "seed": 0,
                "image_size": 64,
            },
        )
    job = RetrainingJob.objects.get()
    assert retrain_task.apply(args=[job.pk]).result == "succeeded", job.log
    candidate = RetrainingJob.objects.get().candidate
    assert candidate.task == "type"
    assert candidate.classes == ["normal", "ischemic", "hemorrhagic"]
    evaluation = candidate.evaluations.get(dataset=dataset)
    assert evaluation.ok, evaluation.error_message
    typed = evaluation.report["study"]
    locked = dataset_services.dataset_test_rows(dataset=dataset)
    assert typed["type_n"] == len({r.group for r in locked if r.label != "normal"})
    assert 0.0 <= typed["type_accuracy"] <= 1.0

    page = as_admin.get(reverse("feedback:model-detail", args=[candidate.pk]))
    assert f"of {typed['type_n']} strokes" in page.text
    assert "Stroke type right" in page.text
    # A handful of locked phantom studies cannot vouch for a model: an override.
    assert "fewer than the 20 the gate needs" in page.text
    as_admin.post(
        reverse("feedback:model-promote", args=[candidate.pk]),
        {"override_reason": "Phantom demo: no real model to protect"},
    )
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.ACTIVE
    active_model.refresh_from_db()
    assert active_model.status == ModelStatus.ACTIVE  # the binary model stays

    monkeypatch.setattr(study_adapter, "analyse", REAL_ANALYSE)
    study_adapter._loaded.clear()
    files = unique_uploads(series_dir, "typed")
    study = study_services.study_create(user=clinician, files=files).study
    study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == "ready", study.error_message
    result = study.current_result
    assert result.model_version == candidate
    assert set(result.type_probabilities) == {"normal", "ischemic", "hemorrhagic"}


def test_a_lesion_feature_job_trains_in_seconds_and_is_judged_on_the_locked_split(
    as_admin,
    active_model,
    phantom_dataset,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    """The interpretable model is a retraining choice like the CNNs: the job trains
    it without TensorFlow epochs, evaluates it on the locked split through the
    serving Predictor, and its page shows the result beside the active model."""
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", lambda pk: None)
    dataset = phantom_dataset("lesion", seed=11, test_fraction=0.3)
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(
            reverse("feedback:job-list"),
            {
                "dataset": dataset.pk,
                "architecture": "lesion_features",
                "task": "binary",
                "epochs": 1,
                "seed": 0,
                "image_size": 64,
            },
        )
    job = RetrainingJob.objects.get()
    assert retrain_task.apply(args=[job.pk]).result == "succeeded", job.log
    candidate = RetrainingJob.objects.get().candidate
    assert candidate.architecture == "lesion_features"
    assert candidate.card["extra"]["explanation"] == "lesion_map"
    evaluation = candidate.evaluations.get(dataset=dataset)
    assert evaluation.ok, evaluation.error_message
    locked = dataset_services.dataset_test_rows(dataset=dataset)
    assert evaluation.report["studies"] == len({r.group for r in locked})
    page = as_admin.get(reverse("feedback:model-detail", args=[candidate.pk]))
    assert "lesion_features" in page.text or "Lesion features" in page.text
