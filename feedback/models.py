from django.conf import settings
from django.db import models

from stroke_portal.models import BaseModel

from .conf import promotion_min_specificity


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelTask(models.TextChoices):
    """What a model answers (ml.modelfile.TASK_CLASSES)."""

    BINARY = "binary", "Stroke vs normal"
    TYPE = "type", "Stroke type (ischemic / hemorrhagic / normal)"


class ModelSource(models.TextChoices):
    COMMAND = "command", "Registered on the server"
    TRAINING = "training", "Retraining job"
    UPLOAD = "upload", "Uploaded by an admin"


class ModelVersion(BaseModel):
    """A model file the portal knows, with what its model.json says about it.

    Every AI result keeps the version that made it (PROTECT), so a version is never
    deleted once used; it is retired instead.
    """

    name = models.CharField(max_length=120)
    version = models.CharField(max_length=64)
    architecture = models.CharField(max_length=64)
    task = models.CharField(max_length=16)
    classes = models.JSONField(default=list)
    modality = models.CharField(max_length=8, default="CT")
    path = models.CharField(max_length=500, help_text="Model folder on the server.")
    sha256 = models.CharField(max_length=64, help_text="sha256 of model.json.")
    card = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(default=0.5)
    is_demo = models.BooleanField(default=False)
    status = models.CharField(
        max_length=12, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    # The admin's written reason when this version was promoted although the gate
    # refused it (empty when it passed); the audit trail has the full record.
    override_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    source = models.CharField(
        max_length=12, choices=ModelSource.choices, default=ModelSource.COMMAND
    )
    training_job = models.ForeignKey(
        "RetrainingJob",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="candidates",
    )
    data_fingerprint = models.CharField(max_length=64, blank=True)
    # The version this one replaced when it became active: where a rollback goes.
    previous_active = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Loaded as the inference workers load it (uploads are checked on the training
    # worker, never in a web process).
    load_checked_at = models.DateTimeField(null=True, blank=True)
    load_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "modality"],
                condition=models.Q(status="active"),
                name="one_active_model_per_task_and_modality",
            ),
            models.UniqueConstraint(fields=["sha256"], name="model_file_once"),
        ]

    def __str__(self) -> str:
        demo = " (demo)" if self.is_demo else ""
        return f"{self.name} {self.version}{demo}"

    @property
    def badge(self) -> str:
        """Bootstrap colour of the status badge."""
        return {ModelStatus.ACTIVE: "success", ModelStatus.CANDIDATE: "info"}.get(
            self.status, "secondary"
        )

    @property
    def locked_evaluation(self) -> "ModelEvaluation | None":
        """The newest successful evaluation on a locked test split (use with
        prefetch_related("evaluations"): no query per row)."""
        return next((e for e in self.evaluations.all() if e.ok), None)

    @property
    def card_evaluation(self) -> "CardEvaluation | None":
        """The figures its model file brings from its own test, if any."""
        evaluation = CardEvaluation(self)
        return evaluation if evaluation.ok else None

    @property
    def headline_evaluation(self) -> "ModelEvaluation | CardEvaluation | None":
        """The figures the model list and the dashboard show for this version: a
        locked split's when it has been judged on one, else its card's own."""
        return self.locked_evaluation or self.card_evaluation

    @property
    def training_fingerprint(self) -> str:
        """The card's fingerprint of what it was trained on, else its job's."""
        if self.data_fingerprint or not self.training_job_id:
            return self.data_fingerprint
        return self.training_job.data_fingerprint

    @property
    def training_data_summary(self) -> str:
        """What its card says it was trained on, in words ("" if nothing)."""
        data = self.card.get("training_data") or {}
        parts = [str(data["source"])] if data.get("source") else []
        keys = ("images", "patients", "scans")
        parts += [f"{data[key]} {key}" for key in keys if data.get(key)]
        return ", ".join(parts)


# --- Feedback cases ---------------------------------------------------------------
class CaseKind(models.TextChoices):
    MISCLASSIFIED = "misclassified", "AI was wrong"
    HARD = "hard", "Hard case (AI right)"


class CaseStatus(models.TextChoices):
    PENDING = "pending", "Pending confirmation"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class FeedbackCase(BaseModel):
    """A study whose radiologist reading should teach the next model. It counts for
    training only once confirmed; every link is protected, so a case never loses the
    study, result or model version it is about."""

    study = models.ForeignKey(
        "diagnosis.Study", on_delete=models.PROTECT, related_name="feedback_cases"
    )
    ai_result = models.ForeignKey(
        "diagnosis.AIResult",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="feedback_cases",
    )
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="feedback_cases",
    )
    review = models.ForeignKey(
        "diagnosis.Review",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="feedback_cases",
    )
    kind = models.CharField(max_length=16, choices=CaseKind.choices)
    ai_label = models.CharField(max_length=8, blank=True)
    ai_stroke_type = models.CharField(max_length=12, blank=True)
    final_label = models.CharField(max_length=8)
    stroke_type = models.CharField(max_length=12, blank=True)
    note = models.TextField(blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=12,
        choices=CaseStatus.choices,
        default=CaseStatus.PENDING,
        db_index=True,
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    # Set by the retraining job that found the study's images in a data set's
    # locked test split: a model trained on them would be judged on what it learnt,
    # so the case never trains (it stays confirmed: the reading is right).
    kept_out_dataset = models.ForeignKey(
        "TrainingDataset",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    kept_out_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A study teaches once: a later reading replaces an undecided case.
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(status__in=["pending", "confirmed"]),
                name="one_open_feedback_case_per_study",
            )
        ]

    def __str__(self) -> str:
        return f"Feedback case {self.pk} (study {self.study_id})"


# --- Training data sets -----------------------------------------------------------
class DatasetStatus(models.TextChoices):
    INDEXING = "indexing", "Indexing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class TrainingDataset(BaseModel):
    """A folder of labelled images on the server (or an uploaded zip of one),
    indexed once. Its locked test split is chosen at registration (by scan,
    duplicates kept together), stored, and never handed to training: every
    candidate and the active model are judged on it."""

    name = models.CharField(max_length=120, unique=True)
    root = models.CharField(max_length=500, help_text="Folder on the server.")
    # Set when the data set came as an uploaded zip, which the index task unpacks
    # under DATASETS_DIR (root is then that folder).
    archive_name = models.CharField(max_length=255, blank=True)
    archive_bytes = models.BigIntegerField(default=0)
    group_regex = models.CharField(max_length=200, blank=True)
    test_fraction = models.FloatField(default=0.2)
    seed = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=12, choices=DatasetStatus.choices, default=DatasetStatus.INDEXING
    )
    error_message = models.TextField(blank=True)
    images = models.PositiveIntegerField(default=0)
    groups = models.PositiveIntegerField(default=0)
    split_groups = models.PositiveIntegerField(default=0)
    class_counts = models.JSONField(default=dict, blank=True)
    duplicates = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    skipped = models.PositiveIntegerField(default=0)
    locked_test_groups = models.JSONField(default=list, blank=True)
    # label → [images, scans] of the locked test split.
    test_class_counts = models.JSONField(default=dict, blank=True)
    # Phantoms written by ml.synthetic: what is trained on them is a demo model.
    synthetic = models.BooleanField(default=False)
    test_images = models.PositiveIntegerField(default=0)
    fingerprint = models.CharField(max_length=64, blank=True)
    test_fingerprint = models.CharField(max_length=64, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def label_rows(self) -> list[tuple]:
        """(label, images, scans, split groups, locked images, locked scans)."""
        return [
            (label, *counts, *self.test_class_counts.get(label, ["—", "—"]))
            for label, counts in self.class_counts.items()
        ]


# --- Retraining jobs --------------------------------------------------------------
class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class JobTrigger(models.TextChoices):
    MANUAL = "manual", "Started by an admin"
    SCHEDULE = "schedule", "Schedule"


class RetrainingJob(BaseModel):
    """One training run on the training queue: a base data set's training pool plus
    (optionally) the confirmed feedback cases, ending in a candidate model version
    evaluated on the data set's locked test split."""

    OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)

    dataset = models.ForeignKey(
        TrainingDataset, on_delete=models.PROTECT, related_name="jobs"
    )
    architecture = models.CharField(max_length=64, default="custom_cnn")
    task = models.CharField(
        max_length=16, choices=ModelTask.choices, default=ModelTask.BINARY
    )
    epochs = models.PositiveSmallIntegerField(default=10)
    seed = models.PositiveIntegerField(default=0)
    image_size = models.PositiveSmallIntegerField(default=128)
    include_feedback = models.BooleanField(default=True)
    trigger = models.CharField(
        max_length=12, choices=JobTrigger.choices, default=JobTrigger.MANUAL
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    status = models.CharField(
        max_length=12,
        choices=JobStatus.choices,
        default=JobStatus.QUEUED,
        db_index=True,
    )
    cancel_requested = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    epoch = models.PositiveSmallIntegerField(default=0)
    history = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True)
    feedback_cases = models.ManyToManyField(
        FeedbackCase, blank=True, related_name="jobs"
    )
    training_images = models.PositiveIntegerField(default=0)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Workers that claimed it; the sweeper (feedback/services/recovery.py) gives up
    # on a job whose workers keep dying instead of sending it to the next one.
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the sweeper last sent it again (one message per lease, not per sweep).
    resent_at = models.DateTimeField(null=True, blank=True)
    wall_seconds = models.FloatField(null=True, blank=True)
    peak_rss_mb = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Retraining job {self.pk}"

    @property
    def candidate(self) -> ModelVersion | None:
        return self.candidates.first()

    BADGES = {
        JobStatus.QUEUED: "info",
        JobStatus.RUNNING: "primary",
        JobStatus.SUCCEEDED: "success",
        JobStatus.FAILED: "danger",
        JobStatus.CANCELLED: "secondary",
    }

    @property
    def badge(self) -> str:
        """Bootstrap colour of the status badge."""
        return self.BADGES.get(self.status, "secondary")

    @property
    def progress_note(self) -> str:
        """Where the job stands in words; early stopping is said as such, so a
        finished job at epoch 6 of 10 does not look unfinished."""
        done, total = self.epoch, self.epochs
        if self.status == JobStatus.QUEUED:
            return "Waiting for the training worker."
        if self.status == JobStatus.RUNNING:
            stopping = " (stopping after this epoch)" if self.cancel_requested else ""
            return f"Epoch {done} of {total}{stopping}."
        if self.status == JobStatus.SUCCEEDED and done < total:
            return (
                f"Stopped early after {done} of {total} epochs: validation AUC had "
                "stopped improving (the best epoch's weights are kept)."
            )
        if self.status == JobStatus.SUCCEEDED:
            return f"All {total} epochs done."
        return f"{self.get_status_display()} after {done} of {total} epochs."


class _Figures:
    """Study-level figures read from a ``report`` (an evaluation's or a card's)."""

    report: dict

    def metric(self, name: str) -> float | None:
        value = self.report.get("study", {}).get(name)
        return None if value is None or value != value else float(value)

    @property
    def low_specificity(self) -> bool:
        value = self.metric("specificity")
        return value is not None and value < promotion_min_specificity()


class CardEvaluation(_Figures):
    """The figures a model file's card brings from its own test (the shipped
    model's cross-validation, a training run's held-out split): shown beside the
    locked-split evaluations, never used by the promotion gate."""

    dataset = None
    error_message = ""
    roc: dict = {}

    def __init__(self, version: ModelVersion) -> None:
        study = (version.metrics or {}).get("study") or {}
        self.pk = f"card-{version.pk}"
        self.report = {"study": study, "studies": study.get("n")}
        self.description = (version.metrics or {}).get("evaluation") or (
            "its training run"
        )
        self.is_demo = version.is_demo

    @property
    def ok(self) -> bool:
        return self.metric("auc") is not None

    @property
    def title(self) -> str:
        return f"Its own test ({self.description})"


class ModelEvaluation(_Figures, BaseModel):
    """One model version judged on one data set's locked test split."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="evaluations"
    )
    dataset = models.ForeignKey(
        TrainingDataset, on_delete=models.PROTECT, related_name="evaluations"
    )
    test_fingerprint = models.CharField(max_length=64)
    report = models.JSONField(default=dict, blank=True)
    roc = models.JSONField(default=dict, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "dataset"], name="one_evaluation_per_split"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_version} on {self.dataset}"

    @property
    def ok(self) -> bool:
        return not self.error_message and "study" in self.report

    @property
    def title(self) -> str:
        return str(self.dataset)
