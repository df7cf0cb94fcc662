"""Writes for retraining jobs: start (by an admin or the schedule), run on the
training worker with live progress, cancel, and evaluate the candidate beside the
active model on the data set's locked test split."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Right
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import User
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .. import ml_adapter, queue, selectors
from ..formatting import figure
from ..models import (
    CaseStatus,
    DatasetStatus,
    FeedbackCase,
    JobStatus,
    JobTrigger,
    ModelEvaluation,
    ModelSource,
    ModelTask,
    ModelVersion,
    RetrainingJob,
    TrainingDataset,
)
from . import datasets, locked
from .registry import model_version_register

logger = logging.getLogger(__name__)
LOG_LIMIT = 200_000  # characters of log kept on the job row


class JobOutcome:
    DONE = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


def run_dir(job: RetrainingJob) -> Path:
    return Path(settings.TRAINING_RUNS_DIR) / f"job-{job.pk}"


@transaction.atomic
def retraining_job_start(
    *,
    dataset: TrainingDataset,
    by: User | None,
    architecture: str = "custom_cnn",
    task: str = ModelTask.BINARY,
    epochs: int = 10,
    seed: int = 0,
    image_size: int = 128,
    include_feedback: bool = True,
    trigger: str = JobTrigger.MANUAL,
    audit: AuditContext | None = None,
) -> RetrainingJob:
    """Queue a job. One at a time: the training worker runs one, and a second job
    waiting behind it would train on data that the first may already make stale."""
    if dataset.status != DatasetStatus.READY:
        raise ValidationError({"dataset": "This data set is not indexed yet."})
    if architecture not in ml_adapter.architectures():
        raise ValidationError({"architecture": f"Unknown architecture {architecture}."})
    if not 1 <= epochs <= 500:
        raise ValidationError({"epochs": "Choose between 1 and 500 epochs."})
    _check_task(task, dataset)
    busy = RetrainingJob.objects.select_for_update().filter(
        status__in=RetrainingJob.OPEN
    )
    if busy.exists():
        raise ValidationError(
            f"{busy.first()} is still {busy.first().get_status_display().lower()}; "
            "one job runs at a time."
        )
    job = RetrainingJob.objects.create(
        dataset=dataset,
        architecture=architecture,
        task=task,
        epochs=epochs,
        seed=seed,
        image_size=image_size,
        include_feedback=include_feedback,
        trigger=trigger,
        started_by=by,
    )
    if include_feedback:
        job.feedback_cases.set(FeedbackCase.objects.filter(status=CaseStatus.CONFIRMED))
    audit_record(
        action="retraining.start",
        context=audit,
        actor=by,
        actor_username="schedule",
        obj=job,
        detail={
            "dataset": dataset.pk,
            "architecture": architecture,
            "task": task,
            "epochs": epochs,
            "seed": seed,
            "feedback_cases": job.feedback_cases.count(),
        },
    )
    transaction.on_commit(lambda: queue.retraining_job_enqueue(job_id=job.pk))
    return job


TYPE_LABELS = {"normal", "ischemic", "hemorrhagic"}


def _check_task(task: str, dataset: TrainingDataset) -> None:
    """A stroke-type model learns from images labelled with the type: a data set
    whose strokes are only "stroke" cannot teach it."""
    if task not in ModelTask.values:
        raise ValidationError({"task": f"Unknown task {task}."})
    labels = set(dataset.class_counts)
    if task == ModelTask.TYPE and labels != TYPE_LABELS:
        raise ValidationError(
            {
                "task": f"{dataset} has labels {', '.join(sorted(labels))}; the "
                "stroke-type task needs normal, ischemic and hemorrhagic folders "
                "and no other labels."
            }
        )


STALE_AFTER = timedelta(minutes=15)


def retraining_job_cancel(
    *, job: RetrainingJob, by: User, audit: AuditContext | None = None
) -> bool:
    """A queued job is cancelled at once; a running one stops after its epoch. A
    running job whose worker has been silent for STALE_AFTER died with it: it is
    cancelled at once, so that it no longer blocks the next job."""
    now = timezone.now()
    silent = Q(status=JobStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
    queued = RetrainingJob.objects.filter(
        Q(status=JobStatus.QUEUED) | silent, pk=job.pk
    ).update(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now)
    running = RetrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        cancel_requested=True
    )
    if queued or running:
        audit_record(action="retraining.cancel", context=audit, actor=by, obj=job)
    return bool(queued or running)


def retraining_schedule_check() -> RetrainingJob | None:
    """Beat: start a job like the last one when enough confirmed cases are new
    since it (or a first one on the newest data set)."""
    last = RetrainingJob.objects.exclude(status=JobStatus.CANCELLED).first()
    since = last.created_at if last else None
    fresh = FeedbackCase.objects.filter(
        status=CaseStatus.CONFIRMED, kept_out_dataset__isnull=True
    )
    if since is not None:
        fresh = fresh.filter(decided_at__gt=since)
    if fresh.count() < settings.RETRAIN_MIN_NEW_CASES:
        return None
    if last is not None and last.dataset.status == DatasetStatus.READY:
        options = {
            "dataset": last.dataset,
            "architecture": last.architecture,
            "task": last.task,
            "epochs": last.epochs,
            "seed": last.seed,
            "image_size": last.image_size,
        }
    else:
        dataset = TrainingDataset.objects.filter(status=DatasetStatus.READY).first()
        if dataset is None:
            return None
        options = {"dataset": dataset}
    try:
        return retraining_job_start(by=None, trigger=JobTrigger.SCHEDULE, **options)
    except ValidationError as exc:
        logger.info("Scheduled retraining not started: %s", exc)
        return None


# --- running (training worker) --------------------------------------------------
class _JobLog(io.TextIOBase):
    """stdout of training, appended to the job row in whole lines, at most about
    once a second (a training run prints thousands of lines: one UPDATE each was
    most of the job's database traffic); `flush` writes what is left."""

    FLUSH_SECONDS = 1.0

    def __init__(self, job_id: int) -> None:
        self.job_id, self.buffer = job_id, ""
        self.flushed_at = time.monotonic()

    def write(self, text: str) -> int:
        self.buffer += text
        due = time.monotonic() - self.flushed_at >= self.FLUSH_SECONDS
        if "\n" in self.buffer and (due or len(self.buffer) > 64_000):
            lines, self.buffer = self.buffer.rsplit("\n", 1)
            self._append(lines + "\n")
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            text, self.buffer = self.buffer, ""
            self._append(text if text.endswith("\n") else text + "\n")

    def _append(self, text: str) -> None:
        job_log(job_id=self.job_id, text=text)
        self.flushed_at = time.monotonic()


def job_log(*, job_id: int, text: str) -> None:
    """Append to the job's log, keeping its last LOG_LIMIT characters (the end of a
    run, where it failed or finished, is what an admin reads)."""
    RetrainingJob.objects.filter(pk=job_id).update(
        log=Right(Concat(F("log"), Value(text)), LOG_LIMIT),
        heartbeat_at=timezone.now(),
    )


def _progress(job_id: int):
    def report(epoch: int, total: int, logs: dict) -> bool:
        job = RetrainingJob.objects.only("history", "cancel_requested").get(pk=job_id)
        point = {
            "epoch": len(job.history) + 1,
            "loss": _number(logs.get("loss")),
            "val_auc": _number(logs.get("val_auc")),
            "val_study_auc": _number(logs.get("val_study_auc")),
            "seconds": _number(logs.get("seconds")),
        }
        RetrainingJob.objects.filter(pk=job_id).update(
            epoch=epoch,
            history=[*job.history, point],
            heartbeat_at=timezone.now(),
        )
        return not job.cancel_requested

    return report


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else round(value, 5)


def _finish(job_id: int, status: str, **fields) -> None:
    RetrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )


def retraining_job_run(*, job_id: int) -> str:
    """Claim a queued job, train, register the candidate and evaluate it and the
    active model on the locked split. A crash leaves `failed` with the reason;
    running the task twice does nothing the second time."""
    claimed = RetrainingJob.objects.filter(
        pk=job_id, status=JobStatus.QUEUED, cancel_requested=False
    ).update(
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return JobOutcome.SKIPPED
    job = RetrainingJob.objects.select_related("dataset").get(pk=job_id)
    started = time.perf_counter()
    try:
        stdout = _JobLog(job_id)
        with contextlib.redirect_stdout(stdout), contextlib.closing(stdout):
            outcome = _train(job)
            if outcome.cancelled:
                _finish(job_id, JobStatus.CANCELLED)
                return JobOutcome.CANCELLED
            if outcome.model_dir is None:
                raise RuntimeError("training saved no model")
            candidate = _register_candidate(job, outcome)
            _evaluate_pair(job, candidate)
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:
        logger.exception("Retraining job %s failed", job_id)
        job_log(job_id=job_id, text=f"\nFAILED: {type(exc).__name__}: {exc}\n")
        _finish(job_id, JobStatus.FAILED, error_message=f"{type(exc).__name__}: {exc}")
        return JobOutcome.FAILED
    _finish(
        job_id,
        JobStatus.SUCCEEDED,
        wall_seconds=round(time.perf_counter() - started, 1),
        peak_rss_mb=round(outcome.peak_rss_mb, 1),
    )
    return JobOutcome.DONE


def _training_rows(job: RetrainingJob, data: Path) -> list:
    data.mkdir(parents=True, exist_ok=True)
    base = data / "base"
    if not base.exists():
        base.symlink_to(job.dataset.root, target_is_directory=True)
    rows = [
        ml_adapter.with_prefix(r, "base")
        for r in datasets.dataset_training_rows(dataset=job.dataset)
    ]
    cases = list(job.feedback_cases.select_related("study").order_by("pk"))
    feedback = datasets.feedback_export(cases=cases, out_dir=data, task=job.task)
    kept = locked.feedback_locked_check(
        cases=cases, rows=feedback, data_root=data, log=_print
    )
    if kept:
        # The job's cases are the ones it trained on: the record of what it learnt.
        job.feedback_cases.remove(*[item.case for item in kept])
        for line in locked.kept_out_lines(kept):
            _print(line)
        out = {datasets.feedback_group(item.case.study_id) for item in kept}
        feedback = [row for row in feedback if row.group not in out]
    _print(
        f"training pool: {len(rows)} images of {job.dataset}; feedback: "
        f"{len(feedback)} images of {len(cases) - len(kept)} confirmed case(s)"
    )
    return rows + feedback


def _print(line: str) -> None:
    print(line, flush=True)


def _train(job: RetrainingJob):
    out = run_dir(job)
    if out.exists():
        shutil.rmtree(out)  # a retried job starts clean
    rows = _training_rows(job, out / "data")
    RetrainingJob.objects.filter(pk=job.pk).update(
        training_images=len(rows),
        data_fingerprint=ml_adapter.manifest_fingerprint(rows),
    )
    return ml_adapter.train(
        rows=rows,
        data_root=out / "data",
        out_dir=out / "run",
        architecture=job.architecture,
        task=job.task,
        epochs=job.epochs,
        seed=job.seed,
        image_size=job.image_size,
        name=f"{job.architecture}-{job.task}",
        version=f"job-{job.pk}",
        cache_dir=Path(settings.TRAINING_RUNS_DIR) / "cache",
        progress=_progress(job.pk),
    )


def _register_candidate(job: RetrainingJob, outcome) -> ModelVersion:
    candidate = model_version_register(
        path=outcome.model_dir,
        created_by=job.started_by,
        source=ModelSource.TRAINING,
        training_job=job,
    )
    print(f"candidate registered: {candidate}", flush=True)
    return candidate


def _evaluate_pair(job: RetrainingJob, candidate: ModelVersion) -> None:
    """The candidate and the active model, on the same locked split."""
    active = selectors.model_version_active(
        task=candidate.task, modality=candidate.modality
    )
    for version in (candidate, active):
        if version is not None:
            evaluation = model_version_evaluate(version=version, dataset=job.dataset)
            print(f"{version}: {_summary(evaluation)}", flush=True)


def _summary(evaluation: ModelEvaluation) -> str:
    if not evaluation.ok:
        return f"not evaluated ({evaluation.error_message})"
    return (
        f"locked test split: AUC {figure(evaluation.metric('auc'))}, sensitivity "
        f"{figure(evaluation.metric('sensitivity'))}, specificity "
        f"{figure(evaluation.metric('specificity'))}"
    )


def model_version_evaluate(
    *, version: ModelVersion, dataset: TrainingDataset, refresh: bool = False
) -> ModelEvaluation:
    """Judge a model on a data set's locked split (kept: the split never changes).
    A model that cannot be read is recorded with the reason, not raised."""
    existing = ModelEvaluation.objects.filter(
        model_version=version, dataset=dataset
    ).first()
    if existing is not None and existing.ok and not refresh:
        return existing
    fields = {"test_fingerprint": dataset.test_fingerprint, "report": {}, "roc": {}}
    try:
        report, roc = ml_adapter.evaluate(
            model_dir=Path(version.path),
            rows=datasets.dataset_test_rows(dataset=dataset),
            data_root=Path(dataset.root),
            cache_dir=Path(settings.TRAINING_RUNS_DIR) / "cache",
        )
        fields.update(report=report, roc=roc, error_message="")
    except INFRASTRUCTURE_ERRORS:
        raise
    except Exception as exc:  # any unreadable model is a recorded reason
        fields["error_message"] = f"{type(exc).__name__}: {exc}"[:2000]
    evaluation, _ = ModelEvaluation.objects.update_or_create(
        model_version=version, dataset=dataset, defaults=fields
    )
    return evaluation
