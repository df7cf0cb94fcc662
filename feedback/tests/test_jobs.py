"""Retraining jobs through the real views and task: started by an admin or the
schedule, one at a time, live progress, cancellation, a crash recorded as failed.
Training itself is stubbed at feedback's ml adapter here; test_retraining_e2e.py
trains for real."""

from pathlib import Path

import pytest
from django.urls import reverse

from accounts.models import AuditEntry
from feedback import ml_adapter
from feedback.models import (
    CaseStatus,
    FeedbackCase,
    JobStatus,
    JobTrigger,
    RetrainingJob,
)
from feedback.services import datasets as dataset_services
from feedback.services import retraining_schedule_check
from feedback.tasks import retrain_task
from ml.datasets import ManifestRow


@pytest.fixture
def pool(ready_dataset, monkeypatch):
    rows = [
        ManifestRow(f"{label}/s{i}/1 (1).png", label, f"scan {i}", f"{i:064d}", "")
        for i, label in enumerate(["normal", "stroke"] * 3)
    ]
    monkeypatch.setattr(dataset_services, "dataset_training_rows", lambda dataset: rows)
    return rows


@pytest.fixture
def no_enqueue(monkeypatch):
    queued = []
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", queued.append)
    return queued


def start(client, dataset, **extra):
    data = {
        "dataset": dataset.pk,
        "architecture": "custom_cnn",
        "task": "binary",
        "epochs": 3,
        "seed": 7,
        "image_size": 64,
        "include_feedback": "on",
    } | extra
    return client.post(reverse("feedback:job-list"), data)


def fake_train(epochs_run=3, cancel_at=None, crash=None):
    def train(*, progress, out_dir, epochs, **kwargs):
        for epoch in range(1, epochs_run + 1):
            if crash and epoch == 2:
                raise crash
            keep = progress(epoch, epochs, {"loss": 1.0 / epoch, "val_auc": 0.5})
            print(f"epoch {epoch}/{epochs}")
            if keep is False or epoch == cancel_at:
                return ml_adapter.TrainOutcome(None, True, 0.1, 100.0)
        return ml_adapter.TrainOutcome(None, False, 0.1, 100.0)

    return train


def test_admin_starts_a_job_queued_for_the_training_worker(
    as_admin, ready_dataset, no_enqueue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    assert response.status_code == 302
    assert (job.status, job.architecture, job.epochs, job.seed) == (
        "queued",
        "custom_cnn",
        3,
        7,
    )
    assert no_enqueue == [job.pk]
    assert AuditEntry.objects.filter(action="retraining.start").exists()
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "plotly/plotly.min.js" in page.text and "training-chart" in page.text


def test_a_stroke_type_job_needs_a_data_set_labelled_by_type(
    as_admin, ready_dataset, no_enqueue
):
    ready_dataset.class_counts = {"normal": [10, 2, 2], "stroke": [10, 2, 2]}
    ready_dataset.save()
    response = start(as_admin, ready_dataset, task="type")
    assert response.status_code == 400
    assert "needs normal, ischemic and hemorrhagic" in response.text
    assert not RetrainingJob.objects.exists()

    ready_dataset.class_counts = {
        "normal": [10, 2, 2],
        "ischemic": [5, 1, 1],
        "hemorrhagic": [5, 1, 1],
    }
    ready_dataset.save()
    assert start(as_admin, ready_dataset, task="type").status_code == 302
    job = RetrainingJob.objects.get()
    assert job.task == "type"
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "stroke type (ischemic / hemorrhagic / normal)" in page.text


def test_the_job_form_offers_both_tasks(as_admin, ready_dataset):
    page = as_admin.get(reverse("feedback:job-list"))
    assert 'value="binary"' in page.text and 'value="type"' in page.text


def test_retrain_task_is_routed_to_the_training_queue(settings):
    from stroke_portal.celery import app

    route = app.amqp.router.route({}, retrain_task.name)
    assert route["queue"].name == "training"


def test_one_job_at_a_time(as_admin, ready_dataset, no_enqueue):
    start(as_admin, ready_dataset)
    response = start(as_admin, ready_dataset)
    assert response.status_code == 400
    assert "one job runs at a time" in response.text
    assert RetrainingJob.objects.count() == 1


def test_only_admins_start_jobs(as_radiologist, api_radiologist, ready_dataset):
    assert start(as_radiologist, ready_dataset).status_code == 403
    api = api_radiologist.post(
        reverse("api:retraining-job-list"), {"dataset": ready_dataset.pk}
    )
    assert api.status_code == 403
    assert not RetrainingJob.objects.exists()


def test_progress_and_log_are_recorded_epoch_by_epoch(
    as_admin, ready_dataset, pool, no_enqueue, monkeypatch
):
    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    seen = []

    def train(**kwargs):
        def progress(epoch, total, logs):
            keep = kwargs["progress"](epoch, total, logs)
            seen.append(as_admin.get(reverse("feedback:job-status", args=[job.pk])))
            return keep

        return fake_train()(**(kwargs | {"progress": progress}))

    monkeypatch.setattr(ml_adapter, "train", train)
    assert retrain_task.apply(args=[job.pk]).result == "failed"  # no model saved
    states = [r.json() for r in seen]
    assert [s["epoch"] for s in states] == [1, 2, 3]
    assert states[0]["status"] == "running" and not states[0]["finished"]
    assert states[0]["note"] == "Epoch 1 of 3." and states[0]["badge"] == "primary"
    assert states[0]["started"] != "waiting for the training worker"
    assert [round(h["loss"], 3) for h in states[-1]["history"]] == [1.0, 0.5, 0.333]
    job.refresh_from_db()
    assert "epoch 3/3" in job.log and "training pool: 6 images" in job.log


def test_a_job_that_stopped_early_reads_as_done(as_admin, ready_dataset, no_enqueue):
    start(as_admin, ready_dataset, epochs=10)
    job = RetrainingJob.objects.get()
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "Waiting for the training worker." in page.text
    RetrainingJob.objects.filter(pk=job.pk).update(status="succeeded", epoch=6)
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "Stopped early after 6 of 10 epochs" in page.text
    assert 'class="badge text-bg-success" id="job-status"' in page.text


def test_cancel_stops_a_running_job_after_its_epoch(
    as_admin, ready_dataset, pool, no_enqueue, monkeypatch
):
    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()

    def train(**kwargs):
        def progress(epoch, total, logs):
            if epoch == 1:
                as_admin.post(reverse("feedback:job-cancel", args=[job.pk]))
            return kwargs["progress"](epoch, total, logs)

        return fake_train()(**(kwargs | {"progress": progress}))

    monkeypatch.setattr(ml_adapter, "train", train)
    assert retrain_task.apply(args=[job.pk]).result == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.epoch == 1


def test_a_queued_job_is_cancelled_at_once(as_admin, ready_dataset, no_enqueue):
    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    as_admin.post(reverse("feedback:job-cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert retrain_task.apply(args=[job.pk]).result == "skipped"


def test_a_crash_leaves_failed_with_the_reason(
    as_admin, ready_dataset, pool, no_enqueue, monkeypatch
):
    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    monkeypatch.setattr(
        ml_adapter, "train", fake_train(crash=MemoryError("out of memory"))
    )
    assert retrain_task.apply(args=[job.pk]).result == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message == "MemoryError: out of memory"
    assert "FAILED" in job.log
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "out of memory" in page.text
    # The task running twice (a redelivery) changes nothing.
    assert retrain_task.apply(args=[job.pk]).result == "skipped"


def test_job_takes_the_confirmed_cases_only(
    as_admin, ready_dataset, no_enqueue, make_ready_study, as_radiologist
):
    studies = [make_ready_study() for _ in range(2)]
    for study in studies:
        as_radiologist.post(
            reverse("diagnosis:study-review", args=[study.pk]),
            {"final_label": "normal"},
        )
    confirmed = FeedbackCase.objects.first()
    as_admin.post(reverse("feedback:case-confirm", args=[confirmed.pk]))
    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    assert list(job.feedback_cases.all()) == [confirmed]


def test_schedule_starts_a_job_only_with_enough_new_cases(
    ready_dataset, settings, no_enqueue, make_ready_study, as_radiologist, admin
):
    settings.RETRAIN_MIN_NEW_CASES = 1
    assert retraining_schedule_check() is None
    study = make_ready_study()
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]), {"final_label": "normal"}
    )
    FeedbackCase.objects.update(status=CaseStatus.CONFIRMED)
    from django.utils import timezone

    FeedbackCase.objects.update(decided_at=timezone.now(), decided_by=admin)
    job = retraining_schedule_check()
    assert job is not None and job.trigger == JobTrigger.SCHEDULE
    assert job.started_by is None
    RetrainingJob.objects.update(status=JobStatus.SUCCEEDED)
    assert retraining_schedule_check() is None  # nothing new since that job


def test_beat_entry_is_configured(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["retrain-on-new-feedback"]
    assert entry["task"] == "feedback.tasks.retraining_schedule_check"


def test_training_never_sees_the_locked_split(ready_dataset, tmp_path):
    ready_dataset.locked_test_groups = ["scan 1"]
    ready_dataset.save()
    path = dataset_services.pool_manifest_path(ready_dataset)
    ml_adapter.manifest_write(
        [ManifestRow("a.png", "normal", "scan 1", "0" * 64, "")], Path(path)
    )
    with pytest.raises(ValueError, match="locked test split"):
        dataset_services.dataset_training_rows(dataset=ready_dataset)


def test_tensorflow_is_not_imported_by_web_modules():
    import subprocess
    import sys

    code = (
        "import django, os, sys;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE','stroke_portal.settings_test');"
        "django.setup();"
        "import feedback.views, feedback.apis, feedback.tasks, feedback.services;"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_job_whose_worker_died_can_be_cancelled(as_admin, ready_dataset, no_enqueue):
    from datetime import timedelta

    from django.utils import timezone

    start(as_admin, ready_dataset)
    job = RetrainingJob.objects.get()
    RetrainingJob.objects.update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    as_admin.post(reverse("feedback:job-cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert start(as_admin, ready_dataset).status_code == 302  # no longer blocked
