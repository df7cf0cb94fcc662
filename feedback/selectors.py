"""Reads for model versions."""

from .models import ModelStatus, ModelVersion

# A study uses the richest active model for its modality: stroke type when there is
# one, else stroke vs normal.
_TASK_PREFERENCE = ("type", "binary")


def model_version_for_study(*, modality: str) -> ModelVersion | None:
    active = {
        m.task: m
        for m in ModelVersion.objects.filter(
            status=ModelStatus.ACTIVE, modality=(modality or "CT").upper()
        )
    }
    for task in _TASK_PREFERENCE:
        if task in active:
            return active[task]
    return None


def model_version_list():
    return ModelVersion.objects.select_related("created_by").all()
