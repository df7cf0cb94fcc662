from django.conf import settings
from django.db import models

from stroke_portal.models import BaseModel


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


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
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

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
