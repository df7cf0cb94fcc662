"""Writes to diagnosis: ingest an upload, process a study, record a review."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from feedback import selectors as model_selectors
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from . import findings, ml_adapter, signals, storage
from .models import (
    AIResult,
    Label,
    Review,
    Slice,
    Study,
    StudyFile,
    StudyStatus,
    WorklistBucket,
    worklist_bucket,
)
from .queue import study_enqueue

logger = logging.getLogger(__name__)


class UploadError(ValueError):
    """An upload that cannot become a study; `rejected` names each file and why."""

    def __init__(self, message: str, rejected: Sequence[dict] = ()):
        super().__init__(message)
        self.message = message
        self.rejected = list(rejected)


@dataclass
class StudyCreateOutcome:
    study: Study
    created: bool
    rejected: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()\-]+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Longest uploaded file name kept; ml.io leaves names this short as they are.
_MAX_NAME = 150


def upload_name(name: str) -> str:
    """The name an uploaded file is known by in messages and the database: its
    base name without control characters, at most 150 characters (the middle
    elided). Django's parser already drops folders and unprintable characters from
    names it receives; this holds for any caller."""
    base = re.split(r"[/\\]", _CONTROL.sub("", name or ""))[-1].strip()
    base = "file" if base in ("", ".", "..") else base
    if len(base) <= _MAX_NAME:
        return base
    head = (_MAX_NAME - 1) // 2
    return f"{base[:head]}…{base[len(base) - (_MAX_NAME - 1 - head) :]}"


def _safe_name(name: str, index: int) -> str:
    """A file name safe on disk; the user's name (folders included) is kept apart."""
    base = _SAFE_NAME.sub("_", Path(name).name)[:120] or "file"
    return f"{index:05d}_{base}"


def too_many_files_message(count: int | None = None) -> str:
    """Said by the form and the API alike; the request parser may stop counting
    before the last file, so the count can be unknown."""
    many = f"{count} files is" if count is not None else "This upload has"
    return (
        f"{many} more than the {settings.UPLOAD_MAX_FILES} files allowed "
        "in one upload; upload one study at a time or zip it."
    )


def _check_sizes(files: Sequence[UploadedFile]) -> None:
    if not files:
        raise UploadError("Choose at least one file: DICOM, PNG/JPG, NIfTI or a zip.")
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise UploadError(too_many_files_message(len(files)))
    total = sum(f.size for f in files)
    if total > settings.UPLOAD_MAX_BYTES:
        raise UploadError(
            f"The upload is {total / 1024**2:.0f} MB; the limit is "
            f"{settings.UPLOAD_MAX_BYTES / 1024**2:.0f} MB."
        )
    empty = [f.name for f in files if f.size == 0]
    if empty and len(empty) == len(files):
        raise UploadError(
            "Every file is empty (0 bytes).",
            [{"name": n, "reason": "empty file (0 bytes)"} for n in empty],
        )


def _spool(
    files: Sequence[UploadedFile], folder: Path
) -> tuple[list[Path], dict, dict]:
    """Write the uploaded files to a private folder; returns paths, the user's name
    of each path, and the sha256 of each path."""
    paths, names, hashes = [], {}, {}
    for index, upload in enumerate(files):
        path = folder / _safe_name(upload.name, index)
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for chunk in upload.chunks():
                digest.update(chunk)
                out.write(chunk)
        paths.append(path)
        names[str(path)] = upload_name(upload.name)
        hashes[str(path)] = digest.hexdigest()
    return paths, names, hashes


def _content_hash(hashes: dict[str, str]) -> str:
    return hashlib.sha256("".join(sorted(hashes.values())).encode()).hexdigest()


def _rejected(load_rejected, names: dict[str, str] | None = None) -> list[dict]:
    return [
        {"name": r.name, "reason": scrub_paths(r.reason, names=names)}
        for r in load_rejected
    ]


def _server_roots() -> list[str]:
    roots = {tempfile.gettempdir(), str(settings.DATA_DIR), str(settings.FILES_ROOT)}
    roots |= {str(Path(r).resolve()) for r in roots}
    return sorted(roots, key=len, reverse=True)


def scrub_paths(text: str, *, names: dict[str, str] | None = None) -> str:
    """A message for users names the file they uploaded, never a server path:
    each spooled or stored path becomes the user's file name, and any other path
    under the temporary folder or the data folder is removed."""
    for path, name in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    by_base = {Path(path).name: name for path, name in (names or {}).items()}
    pattern = "|".join(re.escape(root.rstrip("/")) for root in _server_roots())
    return re.sub(
        rf"(?:{pattern})/[^\s'\"]*",
        lambda m: by_base.get(Path(m.group(0)).name, "an uploaded file"),
        text,
    )


def _person_name(value: str | None) -> str:
    """DICOM's 'Family^Given^Middle' as 'Family, Given Middle'."""
    parts = [p.strip() for p in (value or "").split("^") if p.strip()]
    if len(parts) < 2:
        return parts[0] if parts else ""
    return f"{parts[0]}, {' '.join(parts[1:])}"


def _clinical_from(metadata, clinical: dict) -> dict:
    """Clinical fields from the form, pre-filled from DICOM where the form is empty."""
    age = clinical.get("patient_age")
    if age is None and metadata.patient_age:
        match = re.match(r"(\d+)Y", metadata.patient_age)
        age = int(match.group(1)) if match else None
    sex = clinical.get("patient_sex") or (metadata.patient_sex or "")[:1].upper()
    return {
        "patient_id": clinical.get("patient_id") or (metadata.patient_id or "")[:64],
        "patient_name": _person_name(metadata.patient_name)[:200],
        "patient_age": age,
        "patient_sex": sex if sex in ("F", "M", "O") else "",
        "symptom_onset": clinical.get("symptom_onset"),
        "clinical_notes": clinical.get("clinical_notes", ""),
        "study_date": metadata.study_date,
        "study_description": (metadata.study_description or "")[:200],
        "study_instance_uid": (metadata.study_instance_uid or "")[:64],
    }


def _dicom_metadata(metadata) -> dict:
    keep = (
        "modality",
        "manufacturer",
        "series_description",
        "slice_thickness_mm",
        "pixel_spacing_mm",
        "slice_spacing_mm",
        "uneven_spacing",
        "gantry_tilt_deg",
        "window_center",
        "window_width",
        "study_time",
        "series_instance_uid",
        "stored_size",  # slices read reduced: their size as stored, and by how much
        "reduction",
    )
    out = {}
    for key in keep:
        value = getattr(metadata, key, None)
        if value is not None:
            out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def study_create(
    *,
    user: User,
    files: Sequence[UploadedFile],
    clinical: dict | None = None,
    request: HttpRequest | None = None,
) -> StudyCreateOutcome:
    """Validate an upload by content and create a queued study, or refuse it with
    a clear message; a refused upload leaves no row and no file behind. The same
    files uploaded again by the same user lead to the existing study.

    Validation reads headers and a sample slice, not every pixel: the worker does
    that, and fails the study naming any file whose pixel data proves damaged."""
    _check_sizes(files)
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        paths, names, hashes = _spool(files, Path(tmp))
        content_hash = _content_hash(hashes)
        existing = Study.objects.filter(
            uploaded_by=user, content_hash=content_hash
        ).first()
        if existing is not None:
            return StudyCreateOutcome(study=existing, created=False)
        try:
            result = ml_adapter.check_upload(paths, names=names)
        except ml_adapter.StudyLoadError as exc:
            rejected = _rejected(getattr(exc, "rejected", []), names)
            message = f"Nothing in this upload could be used: {exc}"
            raise UploadError(scrub_paths(message, names=names), rejected) from exc
        _check_modality(result.metadata, names=result.consumed)
        return _study_save(
            user=user,
            result=result,
            paths=paths,
            names=names,
            hashes=hashes,
            content_hash=content_hash,
            clinical=clinical or {},
            request=request,
        )


ANALYSABLE_MODALITIES = ("CT", "MR")


def _check_modality(metadata, *, names: Sequence[str]) -> None:
    modality = (metadata.modality or "").upper()
    if metadata.source_kind == "dicom" and modality not in ANALYSABLE_MODALITIES:
        more = f" and {len(names) - 1} more file(s)" if len(names) > 1 else ""
        files = f" ({names[0]}{more})" if names else ""
        raise UploadError(
            f"This upload{files} is a {modality or 'unknown-modality'} study; the "
            "portal analyses head CT and MR only."
        )


def _study_save(
    *, user, result, paths, names, hashes, content_hash, clinical, request
) -> StudyCreateOutcome:
    """Store the files and create the rows in one transaction, holding a lock per
    file content: the same files sent twice at once (a double click, the form and
    the API) make one study, and a refused upload never deletes a stored file that
    another upload, still in its transaction, has just found there."""
    consumed = set(result.consumed)
    used = [p for p in paths if names[str(p)] in consumed] or paths
    with transaction.atomic():
        _lock_contents(hashes[str(p)] for p in used)
        existing = Study.objects.filter(
            uploaded_by=user, content_hash=content_hash
        ).first()
        if existing is not None:
            return StudyCreateOutcome(study=existing, created=False)
        new_files: list[Path] = []
        try:
            stored = []
            for path in used:
                target, is_new = storage.store_upload(path, hashes[str(path)])
                if is_new:
                    new_files.append(target)
                stored.append((path, target))
            study = _study_rows(
                user=user,
                result=result,
                stored=stored,
                names=names,
                hashes=hashes,
                content_hash=content_hash,
                clinical=clinical,
            )
            audit_record(
                action="study.upload",
                request=request,
                actor=user,
                obj=study,
                detail={"files": len(paths), "slices": study.slice_count},
            )
        except Exception:
            storage.remove_quietly(new_files)  # nothing half-saved; locks still held
            raise
        transaction.on_commit(lambda: study_enqueue(study_id=study.pk))
    return StudyCreateOutcome(
        study=study,
        created=True,
        rejected=_rejected(result.rejected, names),
        warnings=[scrub_paths(w, names=names) for w in result.warnings],
    )


def _lock_contents(sha256s) -> None:
    """Transaction-scoped PostgreSQL advisory locks on the files' contents, taken in
    one order so that two uploads cannot deadlock. SQLite needs none: its
    transactions start IMMEDIATE, one writer at a time."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    keys = sorted({int(sha[:15], 16) for sha in sha256s})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(%s::bigint[]) AS k ORDER BY k) AS keys",
            [keys],
        )


def _study_rows(
    *, user, result, stored, names, hashes, content_hash, clinical
) -> Study:
    metadata = result.metadata
    now = timezone.now()
    study = Study(
        uploaded_by=user,
        status=StudyStatus.QUEUED,
        queued_at=now,
        content_hash=content_hash,
        source_kind=metadata.source_kind,
        units=metadata.units,
        modality=(metadata.modality or "CT")[:8],
        slice_count=len(result.slices),
        progress_total=len(result.slices),
        rejected_files=_rejected(result.rejected, names),
        warnings=[scrub_paths(w, names=names) for w in result.warnings],
        dicom_metadata=_dicom_metadata(metadata),
        **_clinical_from(metadata, clinical),
    )
    study.full_clean(exclude=["uploaded_by"])
    study.save()
    StudyFile.objects.bulk_create(
        StudyFile(
            study=study,
            original_name=names[str(path)][:300],
            sha256=hashes[str(path)],
            size=path.stat().st_size,
            storage_name=str(target.relative_to(storage.uploads_root())),
        )
        for path, target in stored
    )
    Slice.objects.bulk_create(
        Slice(
            study=study,
            index=i,
            source_name=info.source[:300],
            position_mm=info.position_mm,
        )
        for i, info in enumerate(result.slices)
    )
    return study


# --- Processing (worker) ------------------------------------------------------------
class ProcessOutcome:
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # already done, or not processable
    BUSY = "busy"  # another worker holds a fresh claim: try again later


def _lease() -> timedelta:
    return timedelta(seconds=settings.PROCESSING_LEASE_SECONDS)


def study_claim(*, study_id: int, token: str) -> bool:
    """Take the study for processing: queued ones, or processing ones whose worker
    stopped beating (it died). A guarded UPDATE, so only one worker wins. A study
    that has already taken STUDY_MAX_ATTEMPTS workers down with it is not taken
    again (the message that Celery re-delivers after each death would otherwise
    kill worker after worker): the sweeper fails it with a reason."""
    now = timezone.now()
    retakeable = Q(
        status=StudyStatus.PROCESSING, attempts__lt=settings.STUDY_MAX_ATTEMPTS
    )
    stale = Q(heartbeat_at__lt=now - _lease())
    orphan = _orphaned_claim(study_id)
    if orphan:
        stale |= Q(claimed_by=orphan)
    claimable = Q(status=StudyStatus.QUEUED) | (retakeable & stale)
    return bool(
        Study.objects.filter(claimable, pk=study_id).update(
            status=StudyStatus.PROCESSING,
            bucket=WorklistBucket.IN_PROGRESS,
            claim_token=token,
            claimed_by=_this_process(),
            heartbeat_at=now,
            processing_started_at=now,
            attempts=F("attempts") + 1,
            progress_done=0,
            error_message="",
            outside_scope_reason="",
        )
    )


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _orphaned_claim(study_id: int) -> str:
    """The study's claim ("host:pid") when it belongs to a process on this host that
    no longer exists: the pool process that held it was killed, and the message
    Celery gave back at once (reject_on_worker_lost) may take over now rather than
    after the lease. "" otherwise (another host, a live process, no claim)."""
    owner = (
        Study.objects.filter(pk=study_id, status=StudyStatus.PROCESSING)
        .values_list("claimed_by", flat=True)
        .first()
    )
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return ""
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return owner
    except OSError:  # exists, owned by someone else
        return ""
    return ""


def _heartbeat(study_id: int, token: str, done: int, total: int) -> None:
    Study.objects.filter(pk=study_id, claim_token=token).update(
        progress_done=done, progress_total=total, heartbeat_at=timezone.now()
    )


def _fail(study_id: int, token: str, message: str) -> None:
    Study.objects.filter(
        pk=study_id, status=StudyStatus.PROCESSING, claim_token=token
    ).update(
        status=StudyStatus.FAILED,
        bucket=WorklistBucket.FAILED,
        failed_at=timezone.now(),
        error_message=scrub_paths(message, names=_stored_names(study_id))[:2000],
    )


def _stored_names(study_id: int) -> dict[str, str]:
    root = storage.uploads_root()
    return {
        str(root / storage_name): original
        for storage_name, original in StudyFile.objects.filter(
            study_id=study_id
        ).values_list("storage_name", "original_name")
    }


def _stored_paths(study: Study) -> tuple[list[Path], dict[str, str]]:
    paths, names = [], {}
    for f in study.files.all():
        path = storage.uploads_root() / f.storage_name
        paths.append(path)
        names[str(path)] = f.original_name
    return paths, names


#: A study the model declined (not a head CT) is still read, but after every study
#: the AI did read: nothing the model said makes it urgent.
OUTSIDE_SCOPE_PRIORITY = -1.0


def study_priority(*, label: str, probability: float, stroke_type: str) -> float:
    """Worklist order: suspected strokes above everything else, the surer first;
    a suspected bleed above a suspected infarct at equal probability."""
    if not math.isfinite(probability):
        probability = 0.0  # a non-finite value must not take the worklist over
    if label != Label.STROKE:
        return round(probability, 4)
    return round(1.0 + probability + (0.1 if stroke_type == "hemorrhagic" else 0.0), 4)


def study_process(*, study_id: int) -> str:
    """Run the AI on a study end to end. Deterministic failures (unreadable files,
    no model, a model error) set `failed` with a readable reason; database and broker
    errors propagate so that the task is retried."""
    token = uuid.uuid4().hex
    if not study_claim(study_id=study_id, token=token):
        return _why_not_claimed(study_id)
    study = Study.objects.get(pk=study_id)
    model = model_selectors.model_version_for_study(modality=study.modality)
    if model is None:
        _fail(
            study_id,
            token,
            f"No active AI model for {study.modality} studies. An "
            "administrator must activate one; then reprocess the study.",
        )
        return ProcessOutcome.FAILED
    loaded = None
    try:
        loaded = _read(study, token)
        analysis = _predict(study, model, token, loaded)
    except ml_adapter.OutsideModelScope as exc:
        return _outside_scope_store(
            study=study,
            model=model,
            token=token,
            loaded=loaded,
            reason=scrub_paths(str(exc), names=_stored_names(study_id)),
        )
    except INFRASTRUCTURE_ERRORS:
        raise  # the task retries: the study stays claimed, not failed
    except (ml_adapter.StudyLoadError, ValueError, OSError) as exc:
        _fail(study_id, token, f"The study could not be analysed: {exc}")
        return ProcessOutcome.FAILED
    except Exception as exc:  # a model bug must not loop: record it, do not retry
        logger.exception("Analysis of study %s failed", study_id)
        _fail(
            study_id,
            token,
            f"The AI model failed on this study ({type(exc).__name__}). "
            "An administrator has the details in the worker log.",
        )
        return ProcessOutcome.FAILED
    return _results_store(
        study=study, model=model, token=token, analysis=analysis, loaded=loaded
    )


def _why_not_claimed(study_id: int) -> str:
    study = Study.objects.filter(pk=study_id).only("status", "heartbeat_at").first()
    if study is not None and study.status == StudyStatus.PROCESSING:
        return ProcessOutcome.BUSY
    return ProcessOutcome.SKIPPED


def _read(study: Study, token: str):
    paths, names = _stored_paths(study)
    load_result = ml_adapter.read_upload(paths, names=names)
    _check_all_slices_read(study, load_result)
    _heartbeat(study.pk, token, 0, len(load_result.slices))
    return load_result


def _predict(study: Study, model, token: str, load_result):
    total = len(load_result.slices)
    analysis = ml_adapter.analyse(
        load_result=load_result,
        model_path=model.path,
        model_sha256=model.sha256,
        heatmap_count=settings.HEATMAP_SLICES,
        progress=lambda done, n: _heartbeat(study.pk, token, done, n),
    )
    if len(analysis.slice_probabilities) != total:
        raise ValueError(
            f"the model scored {len(analysis.slice_probabilities)} slices of {total}"
        )
    _check_finite(analysis)
    return analysis


def _check_finite(analysis) -> None:
    """A NaN or infinity from the model (or from pixels that were not finite) would
    make a "ready" study with a meaningless number; refuse it with a reason."""
    values = {
        "probability": [analysis.probability],
        "confidence": [analysis.confidence],
        "threshold": [analysis.threshold],
        "lesion volume": [analysis.volume_ml],
        "slice probabilities": list(analysis.slice_probabilities),
        "stroke type probabilities": list((analysis.type_probabilities or {}).values()),
        "timings": list((analysis.timings or {}).values()),
    }
    bad = [
        name
        for name, numbers in values.items()
        if any(not _finite_number(v) for v in numbers if v is not None)
    ]
    if bad:
        raise ValueError(
            f"the AI returned a {', '.join(bad)} value that is not a finite number; "
            "no result was stored"
        )


def _finite_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _check_all_slices_read(study: Study, load_result) -> None:
    """The upload was checked from headers and a sample slice; pixel data that only
    this full read finds damaged fails the study, naming the files, rather than
    shifting its slices."""
    if len(load_result.slices) == study.slice_count:
        return
    known = {r["name"] for r in study.rejected_files}
    damaged = [r for r in load_result.rejected if r.name not in known]
    named = "; ".join(f"{r.name}: {r.reason}" for r in damaged[:5])
    raise ValueError(
        f"only {len(load_result.slices)} of the study's {study.slice_count} slices "
        f"could be read{f' ({named})' if named else ''}. Upload the study again "
        "without the damaged file(s)."
    )


def _write_derived(
    study_id: int, token: str, volume: np.ndarray, analysis, card: dict
) -> dict:
    """Volume for the viewer and overlay PNGs (heatmaps or lesion outlines, as the
    model card says), named by claim so that a worker that lost its claim never
    overwrites the winner's files. A slice with nothing to outline gets none."""
    folder = storage.study_dir(study_id)
    (folder / "heatmaps").mkdir(parents=True, exist_ok=True)
    partial = folder / f"volume-{token}.npy"
    np.save(partial, volume.astype(np.float32))
    names = {}
    for index, heatmap in (analysis.heatmaps if analysis else {}).items():
        png = ml_adapter.overlay_png(heatmap, card=card)
        if png is None:
            continue
        name = f"{index:04d}-{token[:8]}.png"
        storage.heatmap_path(study_id, name).write_bytes(png)
        names[int(index)] = name
    return {"volume": partial, "heatmaps": names}


def _results_store(*, study, model, token, analysis, loaded) -> str:
    derived = _write_derived(study.pk, token, loaded.volume, analysis, model.card)
    stroke_type = analysis.stroke_type if analysis.label == Label.STROKE else ""
    now = timezone.now()
    with transaction.atomic():
        won = Study.objects.filter(
            pk=study.pk, status=StudyStatus.PROCESSING, claim_token=token
        ).update(
            status=StudyStatus.READY,
            bucket=Case(
                When(reviewed=True, then=Value(WorklistBucket.DONE)),
                default=Value(WorklistBucket.TO_REVIEW),
            ),
            ai_label=analysis.label,
            ai_stroke_type=stroke_type,
            ai_confidence=analysis.confidence,
            ai_probability=analysis.probability,
            ai_finding=findings.card_finding(model.card),
            ai_volume_ml=analysis.volume_ml,
            ai_demo_model=model.is_demo,
            ready_at=now,
            heartbeat_at=now,
            progress_done=study.slice_count,
            # A NIfTI's units are known only once its voxels are read (here).
            units=loaded.metadata.units,
            priority=study_priority(
                label=analysis.label,
                probability=analysis.probability,
                stroke_type=analysis.stroke_type,
            ),
        )
        if not won:
            transaction.set_rollback(True)
            return ProcessOutcome.SKIPPED
        AIResult.objects.filter(study=study, is_current=True).update(is_current=False)
        AIResult.objects.create(
            study=study,
            model_version=model,
            label=analysis.label,
            stroke_type=stroke_type,
            probability=analysis.probability,
            confidence=analysis.confidence,
            threshold=analysis.threshold,
            type_probabilities=analysis.type_probabilities,
            suspicious_slices=analysis.suspicious_slices,
            volume_ml=analysis.volume_ml,
            timings=analysis.timings,
        )
        _slices_update(study, analysis, derived["heatmaps"])
        _announce_ready(study.pk)
    derived["volume"].replace(storage.volume_path(study.pk))
    return ProcessOutcome.DONE


def _outside_scope_store(*, study, model, token, loaded, reason: str) -> str:
    """The model declined the study (not what it was made for): the study is ready to
    read without AI support, says why, and waits below every study the AI read. No
    AI result is recorded, so no probability is shown and none is exported."""
    derived = (
        _write_derived(study.pk, token, loaded.volume, None, model.card)
        if loaded is not None
        else None
    )
    now = timezone.now()
    with transaction.atomic():
        won = Study.objects.filter(
            pk=study.pk, status=StudyStatus.PROCESSING, claim_token=token
        ).update(
            status=StudyStatus.READY,
            bucket=Case(
                When(reviewed=True, then=Value(WorklistBucket.DONE)),
                default=Value(WorklistBucket.TO_REVIEW),
            ),
            ai_label="",
            ai_stroke_type="",
            ai_confidence=None,
            ai_probability=None,
            ai_finding="",
            ai_volume_ml=None,
            ai_demo_model=model.is_demo,
            outside_scope_reason=reason[:2000],
            ready_at=now,
            heartbeat_at=now,
            progress_done=study.slice_count,
            units=loaded.metadata.units if loaded is not None else study.units,
            priority=OUTSIDE_SCOPE_PRIORITY,
        )
        if not won:
            transaction.set_rollback(True)
            return ProcessOutcome.SKIPPED
        AIResult.objects.filter(study=study, is_current=True).update(is_current=False)
        study.slices.update(probability=None, heatmap_name="")
        _announce_ready(study.pk)
    if derived is not None:
        derived["volume"].replace(storage.volume_path(study.pk))
    return ProcessOutcome.DONE


def _announce_ready(study_id: int) -> None:
    transaction.on_commit(
        lambda: signals.study_ready.send(sender=Study, study_id=study_id)
    )


def _slices_update(study: Study, analysis, heatmaps: dict[int, str]) -> None:
    slices = list(study.slices.order_by("index"))
    read = analysis.read_slices or [True] * len(slices)
    for item in slices:
        # A slice the model does not read (neck, face, vertex) has no probability:
        # a 0 % there would look like a normal finding.
        value = analysis.slice_probabilities[item.index]
        item.probability = value if read[item.index] else None
        item.heatmap_name = heatmaps.get(item.index, "")
    Slice.objects.bulk_update(slices, ["probability", "heatmap_name"])


@transaction.atomic
def study_reprocess(
    *, study: Study, by: User, request: HttpRequest | None = None
) -> bool:
    """Queue a ready or failed study again (e.g. after a new model is activated)."""
    updated = Study.objects.filter(
        pk=study.pk, status__in=[StudyStatus.READY, StudyStatus.FAILED]
    ).update(
        status=StudyStatus.QUEUED,
        bucket=WorklistBucket.IN_PROGRESS,
        queued_at=timezone.now(),
        ready_at=None,
        failed_at=None,
        error_message="",
        progress_done=0,
        # A new analysis gets its own tries against lost workers.
        attempts=0,
        resent_at=None,
    )
    if updated:
        audit_record(action="study.reprocess", request=request, actor=by, obj=study)
        transaction.on_commit(lambda: study_enqueue(study_id=study.pk))
    return bool(updated)


# --- Review -------------------------------------------------------------------------
@transaction.atomic
def review_submit(
    *,
    study: Study,
    reviewer: User,
    final_label: str,
    stroke_type: str = "",
    impression: str = "",
    request: HttpRequest | None = None,
) -> Review:
    """Record a radiologist's reading; an earlier one stays as history. Whether it
    agrees with the AI is derived from the current AI result, not trusted from input."""
    if study.status != StudyStatus.READY:
        raise ValidationError("The study has no AI result yet; review it once ready.")
    if final_label not in Label.values:
        raise ValidationError({"final_label": "Choose stroke or no stroke."})
    if final_label == Label.NORMAL:
        stroke_type = ""
    result = study.current_result
    agrees = (
        result is not None
        and result.label == final_label
        and (
            final_label == Label.NORMAL
            or not stroke_type
            or not result.stroke_type
            or stroke_type == result.stroke_type
        )
    )
    Review.objects.select_for_update().filter(study=study, is_current=True).update(
        is_current=False
    )
    Study.objects.filter(pk=study.pk).update(
        reviewed=True,
        bucket=worklist_bucket(status=study.status, reviewed=True),
        updated_at=timezone.now(),
    )
    review = Review.objects.create(
        study=study,
        ai_result=result,
        reviewer=reviewer,
        agrees_with_ai=agrees,
        final_label=final_label,
        stroke_type=stroke_type,
        impression=impression,
    )
    signals.review_saved.send(sender=Review, review=review)
    audit_record(
        action="study.review",
        request=request,
        actor=reviewer,
        obj=study,
        detail={"final_label": final_label, "agrees_with_ai": agrees},
    )
    return review
