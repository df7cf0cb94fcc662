import uuid

from django.db import models

from stroke_portal.models import BaseModel


class Report(BaseModel):
    """One rendering of a study's PDF report, for one state of the study: its AI
    result (none when the model declined a study outside what it was made for) and
    its review (none before a radiologist has read it). A new result or review makes
    a new report; earlier ones stay on disk as what was handed out."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(
        "diagnosis.Study", on_delete=models.CASCADE, related_name="reports"
    )
    ai_result = models.ForeignKey(
        "diagnosis.AIResult",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="reports",
    )
    review = models.ForeignKey(
        "diagnosis.Review",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="reports",
    )
    file_name = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    render_seconds = models.FloatField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["ai_result", "review"],
                condition=models.Q(review__isnull=False),
                name="one_report_per_result_and_review",
            ),
            models.UniqueConstraint(
                fields=["ai_result"],
                condition=models.Q(review__isnull=True),
                name="one_unreviewed_report_per_result",
            ),
            # Without a result the study itself names the state.
            models.UniqueConstraint(
                fields=["study", "review"],
                condition=models.Q(ai_result__isnull=True, review__isnull=False),
                name="one_report_per_review_without_result",
            ),
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(ai_result__isnull=True, review__isnull=True),
                name="one_unreviewed_report_without_result",
            ),
        ]

    def __str__(self) -> str:
        return f"Report {self.reference}"

    @property
    def reference(self) -> str:
        """Short id printed on the report and quoted on the phone."""
        return f"R{self.study_id:06d}-{self.uid.hex[:8].upper()}"
