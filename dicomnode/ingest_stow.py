"""The service behind STOW-RS (dicomnode/stow.py): the instances of one request
become studies, one per StudyInstanceUID, through the same ingest as uploads and
the listener's studies; each instance is referenced or failed with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import AuditOutcome
from diagnosis import storage
from diagnosis.models import Arrival, Study
from diagnosis.services import Origin, StoredFile, UploadError, study_receive

from .ingest import CANNOT_UNDERSTAND, parse_instance


@dataclass
class StowInstance:
    """One part of a STOW-RS request: its file, and what became of it."""

    path: Path
    sop_class: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    failure: int | None = None  # a PS3.18 FailureReason when refused
    reason: str = ""


@dataclass
class StowOutcome:
    instances: list[StowInstance]
    studies: list[Study]


#: PS3.18 FailureReason values used here.
PROCESSING_FAILURE, NOT_THIS_STUDY = 0x0110, 0xA900


def stow_receive(
    *,
    user,
    paths: list[Path],
    study_uid: str | None = None,
    audit: AuditContext | None = None,
) -> StowOutcome:
    """Make studies of the instances of a STOW-RS request, one per
    StudyInstanceUID, as uploads are made (uploaded_by the user, arrival STOW, the
    user's site). Each instance is either referenced (stored in its study) or
    failed with a reason: unreadable, of another study than the URL names, set
    aside (a localizer, a non-image), or part of a study that was refused whole."""
    instances = [_stow_instance(path, study_uid) for path in paths]
    groups: dict[str, list[StowInstance]] = {}
    for item in instances:
        if item.failure is None:
            groups.setdefault(item.study_uid, []).append(item)
    studies = [
        study
        for group in groups.values()
        if (study := _stow_study(user, group, audit)) is not None
    ]
    if not studies:
        _stow_refuse_record(user, instances, audit)
    return StowOutcome(instances=instances, studies=studies)


def _stow_instance(path: Path, study_uid: str | None) -> StowInstance:
    item = StowInstance(path=path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        item.sop_class = str(ds.get("SOPClassUID", "") or "")
        parsed = parse_instance(path.read_bytes())
    except (ValueError, OSError) as exc:
        item.failure, item.reason = CANNOT_UNDERSTAND, str(exc)
        return item
    except Exception:  # pydicom's errors on hostile input are many
        item.failure, item.reason = CANNOT_UNDERSTAND, "not a readable DICOM instance"
        return item
    item.sop_uid, item.study_uid = parsed.sop_uid, parsed.study_uid
    if study_uid and parsed.study_uid != study_uid:
        item.failure = NOT_THIS_STUDY
        item.reason = "of another study than the one the URL names"
    return item


def _stow_study(user, group: list[StowInstance], audit) -> Study | None:
    files = [
        StoredFile(i.path, f"{i.sop_uid}.dcm", storage.file_sha256(i.path))
        for i in group
    ]
    origin = Origin(
        uploaded_by=user,
        arrival=Arrival.STOW,
        received_from=user.get_username(),
        site=user.site,
        last_instance_at=timezone.now(),
    )
    try:
        outcome = study_receive(files=files, origin=origin, audit=audit)
    except UploadError as exc:
        for item in group:
            item.failure, item.reason = PROCESSING_FAILURE, exc.message
        return None
    set_aside = {r["name"]: r["reason"] for r in outcome.study.rejected_files}
    for item in group:
        reason = set_aside.get(f"{item.sop_uid}.dcm")
        if reason is not None:
            item.failure, item.reason = PROCESSING_FAILURE, f"set aside: {reason}"
    return outcome.study


def _stow_refuse_record(user, instances: list[StowInstance], audit) -> None:
    audit_record(
        action="dicom.stow_refused",
        context=audit,
        actor=user,
        outcome=AuditOutcome.FAILURE,
        detail={
            "instances": len(instances),
            "reasons": sorted({i.reason for i in instances if i.reason})[:10],
        },
    )
