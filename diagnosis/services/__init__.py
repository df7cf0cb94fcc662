"""Writes to diagnosis: ingest an upload or a received study (`upload`, `merge`),
process a study in a worker (`claims`, `processing`) and read its other series
for the viewer (`series`), record a review (`review`).
Callers import from here."""

from .claims import study_claim
from .common import StoredFile, scrub_paths
from .merge import MergeOutcome, study_add_instances
from .processing import (
    OUTSIDE_SCOPE_PRIORITY,
    ProcessOutcome,
    study_priority,
    study_process,
    study_reprocess,
)
from .review import review_submit
from .series import series_read_pending
from .upload import (
    ANALYSABLE_MODALITIES,
    Origin,
    StudyCreateOutcome,
    UploadError,
    acquired_at,
    study_create,
    study_receive,
    too_many_files_message,
    upload_name,
)

__all__ = [
    "ANALYSABLE_MODALITIES",
    "OUTSIDE_SCOPE_PRIORITY",
    "MergeOutcome",
    "Origin",
    "ProcessOutcome",
    "StoredFile",
    "StudyCreateOutcome",
    "UploadError",
    "acquired_at",
    "review_submit",
    "scrub_paths",
    "series_read_pending",
    "study_add_instances",
    "study_claim",
    "study_create",
    "study_priority",
    "study_process",
    "study_receive",
    "study_reprocess",
    "too_many_files_message",
    "upload_name",
]
