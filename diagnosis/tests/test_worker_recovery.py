"""The sweeper (diagnosis.recovery through the beat task): a study whose worker died
or whose message the broker lost is sent again and ends ready; studies being worked
on or waiting their turn are left alone; a study that keeps losing its workers fails
with a reason. The model is stubbed at the ml adapter, the broker at its queue length.
The same paths against a real worker and Redis: tests/test_worker_faults.py."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from diagnosis import recovery
from diagnosis.models import AIResult, Study, StudyStatus
from diagnosis.tasks import study_process_task, study_sweep_task

from .conftest import uploads_of


@pytest.fixture
def sent(monkeypatch):
    """The messages the sweeper sends (study ids), instead of the broker."""
    messages = []
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", messages.append)
    return messages


@pytest.fixture
def queue_length(monkeypatch):
    """The broker's answer to 'how many studies wait in the queue'; 0 unless set."""

    class Broker:
        length = 0

    broker = Broker()
    monkeypatch.setattr(recovery, "broker_queue_length", lambda: broker.length)
    return broker


@pytest.fixture
def study(as_clinician, series_dir, sent):
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    sent.clear()
    return Study.objects.get()


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def lease() -> int:
    return settings.PROCESSING_LEASE_SECONDS


def worker_died(study, *, seconds_ago: float, attempts: int = 1) -> None:
    """The study as a worker left it when it was killed mid-analysis."""
    Study.objects.filter(pk=study.pk).update(
        status=StudyStatus.PROCESSING,
        claim_token="dead-worker",
        heartbeat_at=ago(seconds_ago),
        processing_started_at=ago(seconds_ago + 5),
        attempts=attempts,
        progress_done=4,
    )


def sweep(django_capture_on_commit_callbacks) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        return study_sweep_task.apply().result


def test_sweep_sends_a_study_whose_worker_died_and_it_ends_ready(
    study, active_model, stub_analysis, sent, django_capture_on_commit_callbacks
):
    worker_died(study, seconds_ago=lease() + 5)
    assert sweep(django_capture_on_commit_callbacks)["resent"] == [study.pk]
    assert sent == [study.pk]
    assert study_process_task.apply(args=sent).result == "done"
    study.refresh_from_db()
    assert study.status == StudyStatus.READY
    assert AIResult.objects.filter(study=study).count() == 1
    entry = AuditEntry.objects.get(action="study.requeue")
    assert entry.object_id == str(study.pk) and entry.actor_username == "sweeper"
    assert entry.detail["seconds_without_worker"] >= lease()


def test_sweep_leaves_a_study_whose_worker_still_beats(
    study, sent, queue_length, django_capture_on_commit_callbacks
):
    worker_died(study, seconds_ago=lease() / 2)
    assert sweep(django_capture_on_commit_callbacks)["resent"] == []
    assert sent == []


def test_sweep_sends_a_study_once_per_lease_while_no_worker_takes_it(
    study, sent, queue_length, django_capture_on_commit_callbacks
):
    worker_died(study, seconds_ago=lease() + 5)
    sweep(django_capture_on_commit_callbacks)
    sweep(django_capture_on_commit_callbacks)
    assert sent == [study.pk]
    Study.objects.filter(pk=study.pk).update(resent_at=ago(lease() + 1))
    sweep(django_capture_on_commit_callbacks)
    assert sent == [study.pk, study.pk]


def test_sweep_sends_a_queued_study_whose_message_the_broker_lost(
    study,
    active_model,
    stub_analysis,
    sent,
    queue_length,
    django_capture_on_commit_callbacks,
):
    Study.objects.filter(pk=study.pk).update(queued_at=ago(lease() + 5))
    queue_length.length = 0  # a restarted broker: nothing waits, yet the study does
    assert sweep(django_capture_on_commit_callbacks)["resent"] == [study.pk]
    study_process_task.apply(args=sent)
    study.refresh_from_db()
    assert study.status == StudyStatus.READY


def test_sweep_leaves_queued_studies_waiting_their_turn(
    study, sent, queue_length, django_capture_on_commit_callbacks
):
    Study.objects.filter(pk=study.pk).update(queued_at=ago(lease() * 10))
    queue_length.length = 3  # a backlog: the study's message is in it
    sweep(django_capture_on_commit_callbacks)
    queue_length.length = None  # the broker does not answer
    sweep(django_capture_on_commit_callbacks)
    assert sent == []
    study.refresh_from_db()
    assert study.status == StudyStatus.QUEUED


def test_sweep_leaves_a_just_uploaded_study_alone(
    study, sent, queue_length, django_capture_on_commit_callbacks
):
    sweep(django_capture_on_commit_callbacks)
    assert sent == []


def test_study_that_lost_its_workers_too_often_fails_with_a_reason(
    study, as_clinician, sent, queue_length, django_capture_on_commit_callbacks
):
    worker_died(study, seconds_ago=lease() + 5, attempts=settings.STUDY_MAX_ATTEMPTS)
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [study.pk]
    assert sent == []
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED
    page = as_clinician.get(reverse("diagnosis:study-detail", args=[study.pk]))
    assert "each worker that took this study was lost" in page.content.decode()
    assert AuditEntry.objects.filter(action="study.abandon").count() == 1


def test_a_study_that_keeps_killing_its_workers_is_not_taken_again(
    study,
    active_model,
    stub_analysis,
    sent,
    queue_length,
    django_capture_on_commit_callbacks,
):
    """The message Celery re-delivers after each death must not start it again once
    it has taken STUDY_MAX_ATTEMPTS workers down: the sweeper fails it."""
    worker_died(study, seconds_ago=lease() + 5, attempts=settings.STUDY_MAX_ATTEMPTS)
    study_process_task.apply(args=[study.pk])
    assert stub_analysis.calls == 0  # the model never ran on it again
    study.refresh_from_db()
    assert (study.status, study.claim_token) == (StudyStatus.PROCESSING, "dead-worker")
    assert sweep(django_capture_on_commit_callbacks)["failed"] == [study.pk]
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED


def gone_pid() -> int:
    """The pid of a process of this host that has exited."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def claimed_by(study, owner: str) -> None:
    """The study as a worker holds it, with a fresh heartbeat."""
    Study.objects.filter(pk=study.pk).update(
        status=StudyStatus.PROCESSING,
        claim_token="other-process",
        claimed_by=owner,
        heartbeat_at=timezone.now(),
        attempts=1,
    )


def test_a_claim_of_a_pool_process_that_is_gone_is_taken_over_at_once(
    study, active_model, stub_analysis
):
    """A killed pool process's message comes back at once (reject_on_worker_lost);
    on the same host its replacement sees the claim's process is gone and runs the
    study now, not one lease later."""
    import socket

    claimed_by(study, f"{socket.gethostname()}:{gone_pid()}")
    assert study_process_task.apply(args=[study.pk]).result == "done"
    study.refresh_from_db()
    assert study.status == StudyStatus.READY and stub_analysis.calls == 1


@pytest.mark.parametrize("owner", ["live", "other-host"])
def test_a_claim_of_a_live_or_remote_process_waits_for_its_lease(
    owner, study, active_model, stub_analysis
):
    import os
    import socket

    claimed_by(
        study,
        f"{socket.gethostname()}:{os.getppid()}"
        if owner == "live"
        else f"other-host:{gone_pid()}",
    )
    from diagnosis import services

    assert services.study_process(study_id=study.pk) == services.ProcessOutcome.BUSY
    assert stub_analysis.calls == 0


def test_reprocessing_gives_a_study_its_tries_again(
    study, as_admin, sent, django_capture_on_commit_callbacks
):
    Study.objects.filter(pk=study.pk).update(
        status=StudyStatus.FAILED, attempts=settings.STUDY_MAX_ATTEMPTS
    )
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(reverse("diagnosis:study-reprocess", args=[study.pk]))
    study.refresh_from_db()
    assert (study.status, study.attempts) == (StudyStatus.QUEUED, 0)
    assert sent == [study.pk]


def test_a_study_finished_meanwhile_is_not_sent(
    study, sent, queue_length, django_capture_on_commit_callbacks
):
    worker_died(study, seconds_ago=lease() + 5)
    candidates = recovery._stalled(ago(lease()))
    Study.objects.filter(pk=study.pk).update(status=StudyStatus.READY)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert not recovery._study_resend(
            candidates=candidates, study_id=study.pk, now=now
        )
    assert sent == []


def test_beat_sweeps_on_the_default_queue_often_enough_for_two_minutes():
    from stroke_portal.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["requeue-stalled-studies"]
    assert entry["task"] == study_sweep_task.name
    route = app.amqp.router.route({}, study_sweep_task.name)
    assert route["queue"].name == "default"  # not behind the studies it rescues
    # A dead worker's study runs again within the lease plus one sweep.
    assert lease() + entry["schedule"].total_seconds() <= 120


def test_pool_processes_have_time_to_load_the_model_before_reporting():
    # The model takes 8-10 s to load in worker_process_init (issue 13).
    assert settings.CELERY_WORKER_PROC_ALIVE_TIMEOUT >= 30
