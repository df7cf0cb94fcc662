"""A retraining job's log, as an admin watches it: every line arrives, in batches
rather than one database write per printed line, and a long run keeps its end."""

import contextlib

from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedback.models import RetrainingJob
from feedback.services import jobs


def test_printed_lines_all_arrive_in_a_few_writes(ready_dataset, admin):
    job = RetrainingJob.objects.create(dataset=ready_dataset, started_by=admin)
    stdout = jobs._JobLog(job.pk)
    with (
        CaptureQueriesContext(connection) as queries,
        contextlib.redirect_stdout(stdout),
        contextlib.closing(stdout),
    ):
        for n in range(2000):
            print(f"epoch 1 batch {n}: loss 0.5")
        print("the end, without a newline", end="")
    job.refresh_from_db()
    lines = job.log.splitlines()
    assert len(lines) == 2001 and lines[0] == "epoch 1 batch 0: loss 0.5"
    assert lines[-1] == "the end, without a newline"
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) <= 3


def test_a_long_log_keeps_its_last_characters(ready_dataset, admin, monkeypatch):
    monkeypatch.setattr(jobs, "LOG_LIMIT", 1000)
    job = RetrainingJob.objects.create(dataset=ready_dataset, started_by=admin)
    for n in range(300):
        jobs.job_log(job_id=job.pk, text=f"line {n:04d}\n")
    job.refresh_from_db()
    assert len(job.log) == 1000
    assert job.log.endswith("line 0299\n")
    assert "line 0000" not in job.log
