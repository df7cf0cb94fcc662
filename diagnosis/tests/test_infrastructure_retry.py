"""An unreachable database or broker during processing is the infrastructure's error:
the task retries the study instead of failing it as the model's fault. Through the
real task, with the model stubbed at the ml adapter."""

import pytest
from django.db import OperationalError as DatabaseDown
from django.urls import reverse
from kombu.exceptions import OperationalError as BrokerDown

from diagnosis import ml_adapter
from diagnosis.models import Study, StudyStatus
from diagnosis.tasks import study_process_task
from feedback.tasks import retrain_task
from reports.tasks import report_render_task
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .conftest import uploads_of


@pytest.fixture
def study(as_clinician, series_dir, monkeypatch):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    as_clinician.post(
        reverse("diagnosis:study-upload"), {"files": uploads_of(series_dir)}
    )
    return Study.objects.get()


@pytest.mark.parametrize(
    "error", [BrokerDown("broker gone"), DatabaseDown("db gone")], ids=str
)
def test_task_retries_an_infrastructure_error_instead_of_failing_the_study(
    error, study, active_model, stub_analysis, monkeypatch, settings
):
    # The retry takes over its own claim at once instead of waiting out the lease.
    settings.PROCESSING_LEASE_SECONDS = 0
    errors = [error]

    def analyse_after_outage(**kwargs):
        if errors:
            raise errors.pop()
        return stub_analysis(**kwargs)

    monkeypatch.setattr(ml_adapter, "analyse", analyse_after_outage)
    outcome = study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert outcome.result == "done"
    assert study.status == StudyStatus.READY and study.attempts == 2
    assert study.error_message == ""


@pytest.mark.parametrize("task", [study_process_task, report_render_task, retrain_task])
def test_every_retried_task_retries_the_shared_infrastructure_errors(task):
    assert tuple(task.autoretry_for) == INFRASTRUCTURE_ERRORS
