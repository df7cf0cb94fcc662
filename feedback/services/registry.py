"""Writes for model versions: register a model folder, upload one, activate,
promote through the gate, roll back."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import User
from ml.modelfile import file_sha256, model_card_load, model_files_verify

from .. import ml_adapter, queue, selectors
from ..conf import promotion_min_locked_studies, promotion_min_specificity
from ..models import ModelSource, ModelStatus, ModelVersion, RetrainingJob


def model_version_register(
    *,
    path: str | Path,
    created_by: User | None = None,
    audit: AuditContext | None = None,
    source: str = ModelSource.COMMAND,
    training_job: RetrainingJob | None = None,
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
        # Trained on the portal's own phantoms, it is a demo whatever its card says.
        is_demo=card.demo or bool(training_job and training_job.dataset.synthetic),
        created_by=created_by,
        source=source,
        training_job=training_job,
        data_fingerprint=str(card.training_data.get("fingerprint", ""))[:64],
    )
    audit_record(
        action="model.register",
        context=audit,
        actor=created_by,
        actor_username="system",
        obj=version,
        detail={"source": source},
    )
    return version


@transaction.atomic
def model_version_activate(
    *,
    version: ModelVersion,
    by: User | None = None,
    audit: AuditContext | None = None,
    reason: str = "",
    remember_previous: bool = True,
) -> ModelVersion:
    """Make `version` the one active model for its task and modality; the previous
    one is retired (kept for the record and for rollback). Inference workers look
    the active version up for every study, so the next study uses it."""
    previous = (
        ModelVersion.objects.select_for_update()
        .filter(task=version.task, modality=version.modality, status=ModelStatus.ACTIVE)
        .exclude(pk=version.pk)
        .first()
    )
    if previous is not None:
        ModelVersion.objects.filter(pk=previous.pk).update(
            status=ModelStatus.RETIRED, updated_at=timezone.now()
        )
    version.status = ModelStatus.ACTIVE
    version.activated_at = timezone.now()
    fields = ["status", "activated_at", "updated_at"]
    if remember_previous and previous is not None:
        version.previous_active = previous
        fields.append("previous_active")
    version.save(update_fields=fields)
    audit_record(
        action="model.activate",
        context=audit,
        actor=by,
        actor_username="system",
        obj=version,
        detail={"reason": reason, "previous": previous.pk if previous else None},
    )
    return version


@transaction.atomic
def model_version_promote(
    *,
    version: ModelVersion,
    by: User,
    override_reason: str = "",
    audit: AuditContext | None = None,
) -> ModelVersion:
    """Activate a candidate that passes the gate (selectors.promotion_gate: the
    specificity floor, a large enough locked split, and not worse than the active
    model on it). A candidate that fails it needs an admin's written reason, which
    is audited with the rules it broke."""
    if version.status == ModelStatus.ACTIVE:
        raise ValidationError("This version is already active.")
    if version.load_error:
        raise ValidationError(
            f"This model cannot be loaded ({version.load_error}); it cannot be "
            "promoted, even with an override."
        )
    gate = selectors.promotion_gate(candidate=version)
    override_reason = override_reason.strip()
    if not gate.allowed and not override_reason:
        raise ValidationError(
            ["The promotion gate refuses this candidate:", *gate.reasons]
        )
    overridden = not gate.allowed
    version.override_reason = override_reason if overridden else ""
    version.save(update_fields=["override_reason", "updated_at"])
    model_version_activate(
        version=version,
        by=by,
        audit=audit,
        reason=override_reason if overridden else "passed the promotion gate",
    )
    audit_record(
        action="model.promote",
        context=audit,
        actor=by,
        obj=version,
        detail={
            "gate_passed": gate.allowed,
            "override": overridden,
            "override_reason": override_reason if overridden else "",
            "reasons": gate.reasons,
            "dataset": gate.dataset.pk if gate.dataset else None,
            "compared_with": gate.active.pk if gate.active else None,
            "comparisons": gate.comparisons,
            "tolerance": settings.PROMOTION_TOLERANCE,
            "min_specificity": promotion_min_specificity(),
            "min_locked_studies": promotion_min_locked_studies(),
        },
    )
    return version


@transaction.atomic
def model_version_rollback(
    *,
    task: str,
    modality: str,
    by: User,
    audit: AuditContext | None = None,
) -> ModelVersion:
    """Make the version that was active before the current one active again. It
    keeps its own predecessor, so rolling back twice walks further back."""
    current = selectors.model_version_active(task=task, modality=modality)
    if current is None or current.previous_active is None:
        raise ValidationError("There is no earlier active version to roll back to.")
    target = current.previous_active
    model_version_activate(
        version=target,
        by=by,
        audit=audit,
        reason=f"rollback from {current}",
        remember_previous=False,
    )
    audit_record(
        action="model.rollback",
        context=audit,
        actor=by,
        obj=target,
        detail={"from": current.pk, "to": target.pk},
    )
    return target


def model_version_upload(
    *,
    archive: UploadedFile,
    by: User,
    audit: AuditContext | None = None,
) -> ModelVersion:
    """Store an uploaded model archive (a zip of the model folder) after checking
    its card and files, register it as a candidate, and queue the load check on the
    training worker."""
    folder = Path(settings.MODELS_DIR) / "uploads" / uuid.uuid4().hex
    with tempfile.NamedTemporaryFile(suffix=".zip") as spooled:
        for chunk in archive.chunks():
            spooled.write(chunk)
        spooled.flush()
        try:
            ml_adapter.model_archive_unpack(spooled.name, folder)
        except ml_adapter.ModelFileError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ValidationError({"archive": str(exc)}) from exc
    with transaction.atomic():
        version = model_version_register(
            path=folder, created_by=by, audit=audit, source=ModelSource.UPLOAD
        )
        if version.path != str(folder.resolve()):
            shutil.rmtree(folder, ignore_errors=True)  # known already: keep one copy
        transaction.on_commit(lambda: queue.model_check_enqueue(version_id=version.pk))
    return version


def model_version_check(*, version_id: int) -> str:
    """Load a model as the inference workers do and record whether it loads; then
    judge it on every ready data set's locked split."""
    from .jobs import model_version_evaluate

    version = ModelVersion.objects.get(pk=version_id)
    try:
        ml_adapter.model_load_check(Path(version.path))
        error = ""
    except Exception as exc:  # any failure to load is the answer, recorded
        error = f"{type(exc).__name__}: {exc}"[:2000]
    ModelVersion.objects.filter(pk=version.pk).update(
        load_checked_at=timezone.now(), load_error=error
    )
    if error:
        return error
    active = selectors.model_version_active(
        task=version.task, modality=version.modality
    )
    for dataset in selectors.dataset_list(ready=True):
        for model in filter(None, (version, active)):
            model_version_evaluate(version=model, dataset=dataset)
    return "ok"
