"""Writes for model versions: register a model folder, activate a version."""

from pathlib import Path

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from ml.modelfile import file_sha256, model_card_load, model_files_verify

from .models import ModelStatus, ModelVersion


def model_version_register(
    *,
    path: str | Path,
    created_by: User | None = None,
    request: HttpRequest | None = None,
) -> ModelVersion:
    """Record a model folder after checking its card and the sha256 of its files
    (the same model registered twice is found, not duplicated)."""
    folder = Path(path).resolve()
    card = model_card_load(folder)
    model_files_verify(folder, card)
    sha = file_sha256(folder / "model.json")
    existing = ModelVersion.objects.filter(sha256=sha).first()
    if existing is not None:
        return existing
    version = ModelVersion.objects.create(
        name=card.name,
        version=card.version,
        architecture=card.architecture,
        task=card.task,
        classes=list(card.classes),
        modality=card.modality,
        path=str(folder),
        sha256=sha,
        card=card.to_dict(),
        metrics=card.metrics,
        threshold=card.threshold,
        is_demo=card.demo,
        created_by=created_by,
    )
    audit_record(
        action="model.register",
        request=request,
        actor=created_by,
        actor_username="system",
        obj=version,
    )
    return version


@transaction.atomic
def model_version_activate(
    *,
    version: ModelVersion,
    by: User | None = None,
    request: HttpRequest | None = None,
    reason: str = "",
) -> ModelVersion:
    """Make `version` the one active model for its task and modality; the previous
    one is retired (kept for the record and for rollback)."""
    ModelVersion.objects.select_for_update().filter(
        task=version.task, modality=version.modality, status=ModelStatus.ACTIVE
    ).exclude(pk=version.pk).update(status=ModelStatus.RETIRED)
    version.status = ModelStatus.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["status", "activated_at", "updated_at"])
    audit_record(
        action="model.activate",
        request=request,
        actor=by,
        actor_username="system",
        obj=version,
        detail={"reason": reason},
    )
    return version
