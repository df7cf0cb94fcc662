"""Faults against the real Redis broker and PostgreSQL: a worker process killed in the
middle of a study, and the database connection cut during a task. In both, the study
completes exactly once.

These need a worker in another process, so they run only when the tests run on
PostgreSQL and Redis (the in-memory broker cannot cross processes).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from diagnosis import services
from diagnosis.models import AIResult, Study, StudyStatus

from .conftest import uploads_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (
            getattr(settings, "USE_REDIS", False) and connection.vendor == "postgresql"
        ),
        reason="needs the real PostgreSQL and Redis (a worker in another process)",
    ),
]


@pytest.fixture
def files_root(settings, tmp_path):  # the worker process finds files under DATA_DIR
    settings.FILES_ROOT = tmp_path / "files"
    return settings.FILES_ROOT


@pytest.fixture
def worker(transactional_db, tmp_path, files_root):
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("inference", "default")
    database = settings.DATABASES["default"]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
        DJANGO_SECRET_KEY="fault-test-" + "x" * 40,
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:"
        f"{database['PORT']}/{database['NAME']}?application_name=fault-worker",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        REDIS_URL="",
        DATA_DIR=str(tmp_path),
        PROCESSING_LEASE_SECONDS="2",
        FAKE_ANALYSIS_SECONDS="5",
    )
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fault_worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process, tmp_path / "worker.log"
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def upload(clinician, series_dir, django_capture_on_commit_callbacks) -> Study:
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.study_create(user=clinician, files=uploads_of(series_dir))
    return outcome.study


def wait_for(study, statuses, timeout, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study.refresh_from_db()
        if study.status in statuses:
            return study
        time.sleep(0.2)
    pytest.fail(f"study stayed {study.status}; worker log:\n{log.read_text()[-3000:]}")


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_killed_worker_process_redelivers_and_completes_once(
    worker, clinician, active_model, series_dir, django_capture_on_commit_callbacks
):
    process, log = worker
    study = upload(clinician, series_dir, django_capture_on_commit_callbacks)
    wait_for(study, {StudyStatus.PROCESSING}, 60, log)
    time.sleep(1.0)  # in the middle of the analysis
    children = pool_children(process.pid)
    assert children, "the worker has no pool process"
    for child in children:
        os.kill(child, signal.SIGKILL)
    wait_for(study, {StudyStatus.READY, StudyStatus.FAILED}, 90, log)
    assert study.status == StudyStatus.READY, study.error_message
    assert AIResult.objects.filter(study=study).count() == 1
    assert study.attempts >= 2
    assert "WorkerLostError" in log.read_text() or "SIGKILL" in log.read_text()


def test_database_cut_during_a_task_is_retried_and_completes(
    worker, clinician, active_model, series_dir, django_capture_on_commit_callbacks
):
    _process, log = worker
    study = upload(clinician, series_dir, django_capture_on_commit_callbacks)
    wait_for(study, {StudyStatus.PROCESSING}, 60, log)
    time.sleep(1.0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'fault-worker'"
        )
        assert cursor.fetchone()[0] >= 1
    wait_for(study, {StudyStatus.READY, StudyStatus.FAILED}, 90, log)
    assert study.status == StudyStatus.READY, study.error_message
    assert AIResult.objects.filter(study=study).count() == 1
    assert "Retry" in log.read_text() or "retry" in log.read_text()
