from django.conf import settings
from django.db import models

from stroke_portal.models import BaseModel

from .findings import HEMORRHAGE, card_finding


class StudyStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Label(models.TextChoices):
    NORMAL = "normal", "No stroke"
    STROKE = "stroke", "Stroke"


class StrokeType(models.TextChoices):
    NONE = "", "Not specified"
    ISCHEMIC = "ischemic", "Ischemic"
    HEMORRHAGIC = "hemorrhagic", "Hemorrhagic"


class Sex(models.TextChoices):
    UNKNOWN = "", "Unknown"
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other"


class WorklistBucket(models.IntegerChoices):
    """The worklist's first sort key, kept on the row so that ordering 10,000 studies
    is an index scan."""

    TO_REVIEW = 0, "Ready, not reviewed"
    IN_PROGRESS = 1, "Queued or processing"
    FAILED = 2, "Failed"
    DONE = 3, "Reviewed"


def worklist_bucket(*, status: str, reviewed: bool) -> int:
    if status == StudyStatus.READY:
        return WorklistBucket.DONE if reviewed else WorklistBucket.TO_REVIEW
    if status == StudyStatus.FAILED:
        return WorklistBucket.FAILED
    return WorklistBucket.IN_PROGRESS


def reading_agrees(result, *, final_label: str, stroke_type: str) -> bool:
    """A reading agrees with an AI result (an AIResult, or None) when its label is
    the AI's and, for a stroke, neither names a type the other contradicts.

    A hemorrhage model answers one question, bleed or no bleed: a reading of an
    ischemic stroke agrees with its "no hemorrhage suspected" and differs from its
    "suspected intracranial hemorrhage"; a stroke of unspecified type is read as
    the bleed it called."""
    if result is None:
        return False
    if card_finding(result.model_version.card) == HEMORRHAGE:
        bleed = final_label == "stroke" and stroke_type != "ischemic"
        return bleed == (result.label == "stroke")
    if result.label != final_label:
        return False
    return not (stroke_type and result.stroke_type) or stroke_type == result.stroke_type


class Arrival(models.TextChoices):
    UPLOAD = "upload", "Uploaded"
    DICOM = "dicom", "DICOM C-STORE"
    STOW = "stow", "DICOMweb STOW-RS"


class Study(BaseModel):
    """One imaging study, uploaded by a clinician or received from a scanner or
    PACS, and where it is in the pipeline."""

    # Empty for a study received over the network from a node (received_from).
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="studies",
    )
    arrival = models.CharField(
        max_length=8, choices=Arrival.choices, default=Arrival.UPLOAD
    )
    # The sending node's AE title (DICOM) or the sending user (STOW), as words.
    received_from = models.CharField(max_length=120, blank=True)
    # Whose clinicians may see it besides the uploader: the sending node's site.
    site = models.ForeignKey(
        "accounts.Site",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="studies",
    )
    # The clocks a stroke team works against: when the scan was made (DICOM
    # acquisition/series/study time) and when its last instance arrived.
    acquired_at = models.DateTimeField(null=True, blank=True)
    last_instance_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12,
        choices=StudyStatus.choices,
        default=StudyStatus.QUEUED,
        db_index=True,
    )
    error_message = models.TextField(blank=True)
    # Time to result is known for every study: one timestamp per step.
    queued_at = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)

    # sha256 over the uploaded files' hashes: the same files uploaded again by the
    # same user lead to this study instead of a new one.
    content_hash = models.CharField(max_length=64, db_index=True)
    source_kind = models.CharField(max_length=8)  # dicom | image | nifti
    units = models.CharField(max_length=12)
    modality = models.CharField(max_length=8, blank=True, db_index=True)
    slice_count = models.PositiveIntegerField(default=0)
    rejected_files = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    dicom_metadata = models.JSONField(default=dict, blank=True)

    patient_id = models.CharField(
        "Patient ID / MRN", max_length=64, blank=True, db_index=True
    )
    patient_name = models.CharField(max_length=200, blank=True)
    patient_age = models.PositiveSmallIntegerField(null=True, blank=True)
    patient_sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    symptom_onset = models.DateTimeField(null=True, blank=True)
    clinical_notes = models.TextField(blank=True)
    study_date = models.DateField(null=True, blank=True)
    study_description = models.CharField(max_length=200, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True)

    # Worklist order: bucket, then priority (higher first), then waiting time. The
    # current AI finding and review state are copied here when they change, so the
    # worklist reads one table.
    priority = models.FloatField(default=0.0)
    bucket = models.PositiveSmallIntegerField(
        choices=WorklistBucket.choices, default=WorklistBucket.IN_PROGRESS
    )
    ai_label = models.CharField(max_length=8, choices=Label.choices, blank=True)
    ai_stroke_type = models.CharField(
        max_length=12, choices=StrokeType.choices, blank=True
    )
    ai_confidence = models.FloatField(null=True, blank=True)
    # The current result's probability of its finding: what a list shows beside it.
    ai_probability = models.FloatField(null=True, blank=True)
    # The current result's finding (diagnosis.findings), lesion volume and whether a
    # demo model made it, so a worklist row words it without reading the model card.
    ai_finding = models.CharField(max_length=12, blank=True)
    ai_volume_ml = models.FloatField(null=True, blank=True)
    ai_demo_model = models.BooleanField(default=False)
    # Why the active model declined the study (not what it was made for, e.g. not a
    # head CT): it is ready to read, with no AI result.
    outside_scope_reason = models.TextField(blank=True)
    reviewed = models.BooleanField(default=False)
    # Claim of the worker processing the study; a stale heartbeat lets a redelivered
    # message take over from a worker that died.
    claim_token = models.CharField(max_length=32, blank=True)
    # The process holding the claim ("host:pid"): a worker on the same host can tell
    # at once that it is gone, instead of waiting for its heartbeat to go stale.
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the sweeper last sent the study again (diagnosis.recovery), so that it
    # sends one message per lease, not one per sweep, while no worker takes it.
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        indexes = [
            models.Index(
                fields=["bucket", "-priority", "created_at"], name="worklist_order"
            ),
            models.Index(
                fields=["uploaded_by", "bucket", "-priority", "created_at"],
                name="worklist_order_by_uploader",
            ),
        ]
        constraints = [
            # NaN sorts above every number in PostgreSQL: a NaN priority would top
            # every worklist. Bounds that NaN and infinities fail keep it out.
            models.CheckConstraint(
                condition=models.Q(priority__gte=-1e6, priority__lte=1e6),
                name="study_priority_finite",
            ),
            models.UniqueConstraint(
                fields=["uploaded_by", "content_hash"], name="same_upload_once_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"Study {self.pk} ({self.patient_id or 'no patient ID'})"

    @property
    def current_result(self):
        return (
            self.results.filter(is_current=True).select_related("model_version").first()
        )

    @property
    def current_review(self):
        return self.reviews.filter(is_current=True).select_related("reviewer").first()

    @property
    def analysed_series_label(self) -> str:
        """The analysed series as a reader names it ('201 "STD BRAIN"')."""
        metadata = self.dicom_metadata or {}
        number = metadata.get("series_number")
        description = metadata.get("series_description") or ""
        if number is None and not description:
            return "the analysed series"
        return series_words(number=number, description=description)

    @property
    def analysed_series_words(self) -> str:
        """The analysed series in a sentence: 'series 201 "STD BRAIN"'."""
        label = self.analysed_series_label
        return label if label == "the analysed series" else f"series {label}"

    @property
    def seconds_to_result(self) -> float | None:
        if self.ready_at and self.queued_at:
            return (self.ready_at - self.queued_at).total_seconds()
        return None


class StudyFile(models.Model):
    """An uploaded file, stored once under its sha256 outside the web root."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="files")
    original_name = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    storage_name = models.CharField(max_length=200)

    class Meta:
        ordering = ["original_name"]

    def __str__(self) -> str:
        return self.original_name


class SeriesStatus(models.TextChoices):
    PENDING = "pending", "Not read yet"
    READY = "ready", "Viewable"
    FAILED = "failed", "Could not be read"


def series_words(*, number, description: str) -> str:
    """How a reader names a series: '3 "BONE"', or what is known of it."""
    if number not in (None, ""):
        return f'{number} "{description}"' if description else str(number)
    return f'"{description}"' if description else "unnamed series"


class Series(models.Model):
    """Another series of the study's upload (a bone kernel, a thin or a tilted
    series), kept for the viewer only: the AI reads the study's analysed series,
    which has no row here. The viewer numbers series by `index`: 0 for the
    analysed one, these from 1 in series-number order."""

    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="other_series"
    )
    index = models.PositiveSmallIntegerField()
    series_instance_uid = models.CharField(max_length=64)
    number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)
    slice_count = models.PositiveIntegerField()
    # As Study.dicom_metadata: spacing, orientation, thickness, window, reduction.
    dicom_metadata = models.JSONField(default=dict, blank=True)
    # sha256 of the study's stored files that hold its slices.
    files = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=8, choices=SeriesStatus.choices, default=SeriesStatus.PENDING
    )
    error_message = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["index"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "index"], name="series_index_once"
            ),
            models.CheckConstraint(
                condition=models.Q(index__gte=1), name="series_index_after_analysed"
            ),
        ]

    def __str__(self) -> str:
        return f"series {self.label} of study {self.study_id}"

    @property
    def label(self) -> str:
        return series_words(number=self.number, description=self.description)

    @property
    def slice_thickness_mm(self) -> float | None:
        return (self.dicom_metadata or {}).get("slice_thickness_mm")


class Slice(models.Model):
    """One slice of a study in anatomical order, with the AI's view of it."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="slices")
    index = models.PositiveIntegerField()
    source_name = models.CharField(max_length=300)
    position_mm = models.FloatField(null=True, blank=True)
    probability = models.FloatField(null=True, blank=True)
    heatmap_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["study", "index"], name="slice_index_once")
        ]

    def __str__(self) -> str:
        return f"slice {self.index} of study {self.study_id}"


class AIResult(BaseModel):
    """The AI's finding for a study by one model version. Reprocessing adds a new
    result and marks it current; older ones stay for the record."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="results")
    model_version = models.ForeignKey(
        "feedback.ModelVersion", on_delete=models.PROTECT, related_name="results"
    )
    is_current = models.BooleanField(default=True)
    label = models.CharField(max_length=8, choices=Label.choices)
    stroke_type = models.CharField(
        max_length=12, choices=StrokeType.choices, blank=True
    )
    probability = models.FloatField(help_text="Calibrated stroke probability.")
    confidence = models.FloatField(help_text="Calibrated confidence in the label.")
    threshold = models.FloatField()
    type_probabilities = models.JSONField(default=dict, blank=True)
    suspicious_slices = models.JSONField(default=list, blank=True)
    volume_ml = models.FloatField(
        null=True, blank=True, help_text="A segmenting model's lesion volume (mL)."
    )
    timings = models.JSONField(default=dict, blank=True)

    def as_reading(self) -> tuple[str, str]:
        """(final_label, stroke_type) of a reading that says what this result says,
        for "Agree with the AI": a hemorrhage model's suspected bleed is read as a
        hemorrhagic stroke."""
        if self.label == Label.STROKE and (
            card_finding(self.model_version.card) == HEMORRHAGE
        ):
            return self.label, StrokeType.HEMORRHAGIC
        return self.label, self.stroke_type

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(is_current=True),
                name="one_current_result_per_study",
            )
        ]


class Review(BaseModel):
    """A radiologist's reading. A change adds a new review and keeps the old one."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reviews")
    ai_result = models.ForeignKey(
        AIResult,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reviews",
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    is_current = models.BooleanField(default=True)
    agrees_with_ai = models.BooleanField()
    final_label = models.CharField(max_length=8, choices=Label.choices)
    stroke_type = models.CharField(
        max_length=12, choices=StrokeType.choices, blank=True
    )
    impression = models.TextField(blank=True)
    # The reader's measurements from the viewer (diagnosis.measurements): length,
    # ellipse (area, mean and SD) and probe values, each on its slice.
    measurements = models.JSONField(default=list, blank=True)

    @property
    def measurement_words(self) -> list[str]:
        from .measurements import series_labels, words

        labels = series_labels(self.study)
        return [
            words(m, units=self.study.units, series=labels)
            for m in self.measurements or []
        ]

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(is_current=True),
                name="one_current_review_per_study",
            )
        ]
