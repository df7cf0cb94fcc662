from django.contrib import admin

from .models import (
    FeedbackCase,
    ModelEvaluation,
    ModelVersion,
    RetrainingJob,
    TrainingDataset,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse only: every change goes through the portal's services and audit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "task", "modality", "status", "source")
    list_filter = ("status", "task", "modality", "source")


@admin.register(FeedbackCase)
class FeedbackCaseAdmin(ReadOnlyAdmin):
    list_display = ("pk", "study", "kind", "status", "final_label", "reported_by")
    list_filter = ("status", "kind")


@admin.register(TrainingDataset)
class TrainingDatasetAdmin(ReadOnlyAdmin):
    list_display = ("name", "root", "status", "images", "test_images")


@admin.register(RetrainingJob)
class RetrainingJobAdmin(ReadOnlyAdmin):
    list_display = ("pk", "dataset", "architecture", "status", "created_at")
    list_filter = ("status",)


@admin.register(ModelEvaluation)
class ModelEvaluationAdmin(ReadOnlyAdmin):
    list_display = ("model_version", "dataset", "created_at")
