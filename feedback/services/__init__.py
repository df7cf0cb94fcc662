"""Writes of the feedback app: feedback cases, training data sets, retraining jobs
and the model registry. Callers import from here."""

from .cases import (
    feedback_case_confirm,
    feedback_case_flag_hard,
    feedback_case_from_review,
    feedback_case_reject,
)
from .datasets import dataset_index, dataset_register, feedback_export
from .jobs import (
    JobOutcome,
    model_version_evaluate,
    retraining_job_cancel,
    retraining_job_run,
    retraining_job_start,
    retraining_schedule_check,
)
from .recovery import retraining_jobs_requeue_stalled
from .registry import (
    model_version_activate,
    model_version_check,
    model_version_promote,
    model_version_register,
    model_version_rollback,
    model_version_upload,
)

__all__ = [
    "JobOutcome",
    "dataset_index",
    "dataset_register",
    "feedback_case_confirm",
    "feedback_case_flag_hard",
    "feedback_case_from_review",
    "feedback_case_reject",
    "feedback_export",
    "model_version_activate",
    "model_version_check",
    "model_version_evaluate",
    "model_version_promote",
    "model_version_register",
    "model_version_rollback",
    "model_version_upload",
    "retraining_job_cancel",
    "retraining_job_run",
    "retraining_job_start",
    "retraining_jobs_requeue_stalled",
    "retraining_schedule_check",
]
