"""The retraining-job sweeper (feedback/services/recovery.py, through its beat task):
a job whose training worker died is sent again and, once more workers die, fails
with a reason instead of blocking the queue; a job that still beats is left alone;
a queued job whose message the broker lost is sent again. The broker is stubbed at
the task's `delay` and the queue length."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from feedback.models import JobStatus, RetrainingJob
from feedback.tasks import job_sweep_task
from stroke_portal import infrastructure


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", messages.append)
    return messages


@pytest.fixture
def queue_length(monkeypatch):
    class Broker:
        length = 0

    broker = Broker()
    monkeypatch.setattr(
        infrastructure, "broker_queue_length", lambda task: broker.length
    )
    return broker


@pytest.fixture
def job(ready_dataset, admin):
    return RetrainingJob.objects.create(dataset=ready_dataset, started_by=admin)


def ago(minutes: float):
    return timezone.now() - timedelta(minutes=minutes)


def worker_died(job, *, minutes_ago: float, attempts: int = 1) -> None:
    RetrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        started_at=ago(minutes_ago + 10),
        heartbeat_at=ago(minutes_ago),
        attempts=attempts,
        epoch=3,
    )


def sweep(django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        return job_sweep_task.apply().result


def test_a_job_whose_worker_died_is_sent_again_and_says_so(
    job, sent, queue_length, django_capture_on_commit_callbacks, as_admin
):
    worker_died(job, minutes_ago=16)
    assert sweep(django_capture_on_commit_callbacks) == {
        "resent": [job.pk],
        "failed": [],
    }
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and sent == [job.pk]
    assert "its worker stopped answering" in job.log
    assert AuditEntry.objects.filter(action="retraining.requeue").count() == 1
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk])).text
    assert "its worker stopped answering" in page
    # The next sweep, within the lease, does not send it twice.
    assert sweep(django_capture_on_commit_callbacks)["resent"] == []
    assert sent == [job.pk]


def test_a_job_that_still_beats_is_left_alone(
    job, sent, queue_length, django_capture_on_commit_callbacks
):
    worker_died(job, minutes_ago=5)
    assert sweep(django_capture_on_commit_callbacks) == {"resent": [], "failed": []}
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and sent == []


def test_a_job_that_keeps_losing_its_workers_fails_with_the_reason(
    job, sent, queue_length, django_capture_on_commit_callbacks, settings, as_admin
):
    worker_died(job, minutes_ago=20, attempts=settings.RETRAIN_MAX_ATTEMPTS)
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and sent == []
    assert "training worker was lost 2 times" in job.error_message
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk])).text
    assert "training worker was lost 2 times" in page


def test_a_queued_job_whose_message_was_lost_is_sent_again_only_when_the_queue_is_empty(
    job, sent, queue_length, django_capture_on_commit_callbacks
):
    RetrainingJob.objects.filter(pk=job.pk).update(created_at=ago(20))
    queue_length.length = 1  # still waiting its turn behind another message
    assert sweep(django_capture_on_commit_callbacks)["resent"] == []
    queue_length.length = 0
    assert sweep(django_capture_on_commit_callbacks)["resent"] == [job.pk]
    assert sent == [job.pk]


def test_the_sweep_runs_on_the_default_queue_not_behind_training():
    from stroke_portal.celery import app

    route = app.amqp.router.route({}, "feedback.tasks.job_sweep_task")
    assert route["queue"].name == "default"
    assert "requeue-stalled-retraining-jobs" in app.conf.beat_schedule
