"""Process a study in a worker: read every pixel, run the AI and store what it found
(or why it could not) under the worker's claim; queue a study again."""

from __future__ import annotations

import logging
import math
import uuid

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import User
from stroke_portal.infrastructure import INFRASTRUCTURE_ERRORS

from .. import extensions, findings, ml_adapter, signals, storage
from ..models import AIResult, Label, Slice, Study, StudyStatus, WorklistBucket
from ..queue import series_read_enqueue, study_enqueue
from .claims import claim_fail, claim_heartbeat, study_claim
from .common import file_names, scrub_paths, stored_files, stroke_type_for

logger = logging.getLogger(__name__)


class ProcessOutcome:
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # already done, or not processable
    BUSY = "busy"  # another worker holds a fresh claim: try again later


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
    model = extensions.model_version_for_study(modality=study.modality)
    if model is None:
        claim_fail(
            study_id,
            token,
            f"No active AI model for {study.modality} studies. An "
            "administrator must activate one; then reprocess the study.",
        )
        return ProcessOutcome.FAILED
    return _analyse(study, model, token)


def _why_not_claimed(study_id: int) -> str:
    study = Study.objects.filter(pk=study_id).only("status", "heartbeat_at").first()
    if study is not None and study.status == StudyStatus.PROCESSING:
        return ProcessOutcome.BUSY
    return ProcessOutcome.SKIPPED


def _analyse(study: Study, model, token: str) -> str:
    loaded = None
    try:
        loaded = _read(study, token)
        analysis = _predict(study, model, token, loaded)
    except ml_adapter.OutsideModelScope as exc:
        reason = scrub_paths(str(exc), names=file_names(stored_files(study.pk)))
        return _outside_scope_store(
            study=study, model=model, token=token, loaded=loaded, reason=reason
        )
    except INFRASTRUCTURE_ERRORS:
        raise  # the task retries: the study stays claimed, not failed
    except (ml_adapter.StudyLoadError, ValueError, OSError) as exc:
        claim_fail(study.pk, token, f"The study could not be analysed: {exc}")
        return ProcessOutcome.FAILED
    except Exception as exc:  # a model bug must not loop: record it, do not retry
        logger.exception("Analysis of study %s failed", study.pk)
        claim_fail(
            study.pk,
            token,
            f"The AI model failed on this study ({type(exc).__name__}). "
            "An administrator has the details in the worker log.",
        )
        return ProcessOutcome.FAILED
    return _results_store(
        study=study, model=model, token=token, analysis=analysis, loaded=loaded
    )


def _read(study: Study, token: str):
    files = stored_files(study.pk)
    # The series chosen at upload, by its UID: the study's files now hold its other
    # series too, and a tie between series must not be decided again here.
    load_result = ml_adapter.read_upload(
        [f.path for f in files],
        names=file_names(files),
        series_uid=(study.dicom_metadata or {}).get("series_instance_uid"),
    )
    _check_all_slices_read(study, load_result)
    claim_heartbeat(study.pk, token, 0, len(load_result.slices))
    return load_result


def _predict(study: Study, model, token: str, load_result) -> ml_adapter.Analysis:
    total = len(load_result.slices)
    analysis = ml_adapter.analyse(
        load_result=load_result,
        model_path=model.path,
        model_sha256=model.sha256,
        heatmap_count=settings.HEATMAP_SLICES,
        progress=lambda done, n: claim_heartbeat(study.pk, token, done, n),
    )
    if len(analysis.slice_probabilities) != total:
        raise ValueError(
            f"the model scored {len(analysis.slice_probabilities)} slices of {total}"
        )
    _check_finite(analysis)
    return analysis


def _check_finite(analysis: ml_adapter.Analysis) -> None:
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


def _discard_derived(study_id: int, derived: dict) -> None:
    """A worker that lost its claim leaves none of its files behind."""
    storage.remove_quietly(
        [
            derived["volume"],
            *(storage.heatmap_path(study_id, n) for n in derived["heatmaps"].values()),
        ]
    )


def _result_of(study: Study, model, analysis: ml_adapter.Analysis) -> AIResult:
    """The AI result an analysis makes (unsaved): the record a study's AI fields,
    reports and feedback cases are copied from."""
    return AIResult(
        study=study,
        model_version=model,
        label=analysis.label,
        stroke_type=stroke_type_for(
            label=analysis.label, stroke_type=analysis.stroke_type
        ),
        probability=analysis.probability,
        confidence=analysis.confidence,
        threshold=analysis.threshold,
        type_probabilities=analysis.type_probabilities,
        suspicious_slices=analysis.suspicious_slices,
        volume_ml=analysis.volume_ml,
        timings=analysis.timings,
    )


def _ai_fields(result: AIResult | None, model) -> dict:
    """The study's copy of its current AI result (`Study.ai_*`, what the worklist
    shows and filters on): the one place it is written. None: the model declined
    the study, which then shows no AI finding."""
    if result is None:
        blank = dict.fromkeys(("ai_confidence", "ai_probability", "ai_volume_ml"))
        return {
            "ai_label": "",
            "ai_stroke_type": "",
            "ai_finding": "",
            "ai_demo_model": model.is_demo,
            **blank,
        }
    return {
        "ai_label": result.label,
        "ai_stroke_type": result.stroke_type,
        "ai_confidence": result.confidence,
        "ai_probability": result.probability,
        "ai_finding": findings.card_finding(model.card),
        "ai_volume_ml": result.volume_ml,
        "ai_demo_model": model.is_demo,
    }


def _study_ready(study: Study, token: str, **fields) -> bool:
    """Make the study ready with `fields`, if this worker still holds its claim: only
    the winner of a race stores anything. Once committed, `study_ready` is sent."""
    now = timezone.now()
    won = Study.objects.filter(
        pk=study.pk, status=StudyStatus.PROCESSING, claim_token=token
    ).update(
        status=StudyStatus.READY,
        bucket=Case(
            When(reviewed=True, then=Value(WorklistBucket.DONE)),
            default=Value(WorklistBucket.TO_REVIEW),
        ),
        ready_at=now,
        heartbeat_at=now,
        progress_done=study.slice_count,
        **fields,
    )
    if not won:
        transaction.set_rollback(True)
        return False
    AIResult.objects.filter(study=study, is_current=True).update(is_current=False)
    transaction.on_commit(
        lambda: signals.study_ready.send(sender=Study, study_id=study.pk)
    )
    # After study_ready's receivers (alerts, reports): series for viewing only.
    transaction.on_commit(lambda: series_read_enqueue(study_id=study.pk))
    return True


def _results_store(*, study, model, token, analysis, loaded) -> str:
    derived = _write_derived(study.pk, token, loaded.volume, analysis, model.card)
    result = _result_of(study, model, analysis)
    with transaction.atomic():
        won = _study_ready(
            study,
            token,
            **_ai_fields(result, model),
            # A NIfTI's units are known only once its voxels are read (here).
            units=loaded.metadata.units,
            priority=study_priority(
                label=result.label,
                probability=result.probability,
                stroke_type=result.stroke_type,
            ),
        )
        if not won:
            _discard_derived(study.pk, derived)
            return ProcessOutcome.SKIPPED
        result.save()
        _slices_update(study, analysis, derived["heatmaps"])
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
    with transaction.atomic():
        won = _study_ready(
            study,
            token,
            **_ai_fields(None, model),
            outside_scope_reason=reason[:2000],
            units=loaded.metadata.units if loaded is not None else study.units,
            priority=OUTSIDE_SCOPE_PRIORITY,
        )
        if not won:
            if derived is not None:
                _discard_derived(study.pk, derived)
            return ProcessOutcome.SKIPPED
        study.slices.update(probability=None, heatmap_name="")
    if derived is not None:
        derived["volume"].replace(storage.volume_path(study.pk))
    return ProcessOutcome.DONE


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
    *, study: Study, by: User, audit: AuditContext | None = None
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
        audit_record(action="study.reprocess", context=audit, actor=by, obj=study)
        transaction.on_commit(lambda: study_enqueue(study_id=study.pk))
    return bool(updated)
