"""Writes to diagnosis: ingest an upload (`upload`), process a study in a worker
(`claims`, `processing`), record a review (`review`). Callers import from here."""

from .claims import study_claim
from .common import StoredFile, scrub_paths
from .processing import (
    OUTSIDE_SCOPE_PRIORITY,
    ProcessOutcome,
    study_priority,
    study_process,
    study_reprocess,
)
from .review import review_submit
from .upload import (
    ANALYSABLE_MODALITIES,
    StudyCreateOutcome,
    UploadError,
    study_create,
    too_many_files_message,
    upload_name,
)

__all__ = [
    "ANALYSABLE_MODALITIES",
    "OUTSIDE_SCOPE_PRIORITY",
    "ProcessOutcome",
    "StoredFile",
    "StudyCreateOutcome",
    "UploadError",
    "review_submit",
    "scrub_paths",
    "study_claim",
    "study_create",
    "study_priority",
    "study_process",
    "study_reprocess",
    "too_many_files_message",
    "upload_name",
]
