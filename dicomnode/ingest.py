"""Receiving studies over DICOM: who may send, each instance as it arrives, and the
collection that becomes a diagnosis study once its sender has gone quiet (STOW-RS's
side is ingest_stow.py).

The listener (dicomnode/listener.py) calls these from its association threads
and from its completion timer; Celery beat calls `incoming_complete_quiet` too,
as a backup. Everything here is safe to run twice and from several processes at
once: an instance is recorded once per collection (a unique constraint), and a
collection is turned into a study by whoever wins its guarded UPDATE.

What happens to instances of a study that arrive after its collection was queued
(a late series, a second association after the quiet time): they gather in a new
collection, and when that one is quiet they join the study the first one made,
which is analysed again, unless a radiologist has read it already; then they
make a study of their own, so that a reading never changes under its reader.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from pydicom.errors import InvalidDicomError

from accounts.audit import AuditContext, audit_record
from accounts.models import AuditOutcome
from diagnosis import storage
from diagnosis.models import Arrival, Study
from diagnosis.services import (
    MergeOutcome,
    Origin,
    StoredFile,
    UploadError,
    study_add_instances,
    study_receive,
)

from .models import CollectionState, DicomNode, IncomingInstance, IncomingStudy

logger = logging.getLogger(__name__)

#: Storage status "cannot understand" (PS3.4 C.4.2.1.4: 0xC000-0xCFFF).
CANNOT_UNDERSTAND = 0xC000
SUCCESS = 0x0000
#: A collection claimed by a process that died (or is slow) is taken again after
#: this long, or after three quiet times if that is longer.
STALLED_SECONDS = 120


# --- Who may send -----------------------------------------------------------------


def node_accepting(*, ae_title: str, address: str) -> DicomNode | None:
    """The registered, active node that may send studies as `ae_title` from
    `address` (its host, when one is set, must match); None otherwise."""
    node = (
        DicomNode.objects.filter(ae_title=ae_title.strip(), active=True)
        .filter(sends_studies=True)
        .select_related("site")
        .first()
    )
    if node is None or (node.host and node.host.strip() != address):
        return None
    return node


def association_refuse_record(*, ae_title: str, address: str, called: str) -> None:
    """Audit a refused association: who called, from where, and why."""
    known = DicomNode.objects.filter(ae_title=ae_title.strip()).first()
    reason = "calling AE title not registered"
    if known is not None:
        reason = _refusal_reason(known, address)
    audit_record(
        action="dicom.association_refused",
        context=AuditContext(ip_address=address or None, path=f"dicom:{called}"),
        actor_username=ae_title[:150],
        outcome=AuditOutcome.DENIED,
        object_type="dicomnode.dicomnode" if known else "",
        object_id=known.pk if known else "",
        detail={"calling_ae": ae_title, "address": address, "reason": reason},
    )


def _refusal_reason(node: DicomNode, address: str) -> str:
    if not node.active:
        return "node deactivated"
    if not node.sends_studies:
        return "node may not send studies"
    return f"address {address} is not the node's host"


# --- Each instance ----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceOutcome:
    status: int
    comment: str = ""
    duplicate: bool = False
    study_uid: str = ""


@dataclass(frozen=True)
class _Parsed:
    study_uid: str
    series_uid: str
    sop_uid: str


def instance_receive(
    *, node: DicomNode, data: bytes, address: str = ""
) -> InstanceOutcome:
    """Store one C-STORE'd instance (`data`: the file with its meta header) in the
    node's collecting study for its StudyInstanceUID, creating that collection
    when none is collecting. An instance already in the collection (same
    SOPInstanceUID) is kept once. An instance that cannot be parsed, or names no
    study, is refused with "cannot understand" and audited; nothing is saved."""
    try:
        parsed = parse_instance(data)
    except ValueError as exc:
        _instance_refuse_record(node, address, str(exc))
        return InstanceOutcome(CANNOT_UNDERSTAND, str(exc)[:64])
    sha256 = hashlib.sha256(data).hexdigest()
    now = timezone.now()
    with transaction.atomic():
        storage.lock_contents([sha256])  # against a completion removing this content
        incoming = _collection(node, parsed.study_uid, now)
        created = _instance_row(incoming, parsed, sha256, data, now)
        IncomingStudy.objects.filter(pk=incoming.pk).update(
            last_received_at=now, updated_at=now
        )
    return InstanceOutcome(SUCCESS, duplicate=not created, study_uid=parsed.study_uid)


def parse_instance(data: bytes) -> _Parsed:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
        series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
        _check_pixels(ds)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError):
        raise ValueError("not a readable DICOM instance") from None
    except _Damaged as exc:
        raise ValueError(str(exc)) from None
    if not study_uid or not sop_uid:
        raise ValueError("no StudyInstanceUID or SOPInstanceUID")
    if max(len(study_uid), len(sop_uid), len(series_uid)) > 64:
        raise ValueError("a UID longer than 64 characters")
    return _Parsed(study_uid, series_uid, sop_uid)


class _Damaged(Exception):
    pass


def _check_pixels(ds) -> None:
    """Uncompressed pixel data shorter than its rows, columns and bits say is
    damaged in transit or at the sender: refused now, while the sender can still
    say so, rather than failing the study later."""
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    expected = int(ds.Rows) * int(ds.Columns) * samples * frames * bits // 8
    if len(ds.PixelData) < expected:
        raise _Damaged("pixel data cut short")


def _instance_refuse_record(node: DicomNode, address: str, reason: str) -> None:
    audit_record(
        action="dicom.instance_refused",
        context=AuditContext(ip_address=address or None, path="dicom:c-store"),
        actor_username=node.ae_title,
        outcome=AuditOutcome.FAILURE,
        obj=node,
        detail={"calling_ae": node.ae_title, "reason": reason},
    )


def _collection(node: DicomNode, study_uid: str, now) -> IncomingStudy:
    """The node's collecting study for this UID, locked; created when none is (two
    associations racing to create it: the loser takes the winner's)."""
    existing = _collecting(node, study_uid)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return IncomingStudy.objects.create(
                node=node,
                study_instance_uid=study_uid,
                first_received_at=now,
                last_received_at=now,
            )
    except IntegrityError:
        return _collecting(node, study_uid)


def _collecting(node: DicomNode, study_uid: str) -> IncomingStudy | None:
    return (
        IncomingStudy.objects.select_for_update()
        .filter(node=node, study_instance_uid=study_uid)
        .filter(state=CollectionState.COLLECTING)
        .first()
    )


def _instance_row(incoming, parsed: _Parsed, sha256: str, data: bytes, now) -> bool:
    if incoming.instances.filter(sop_instance_uid=parsed.sop_uid).exists():
        return False
    path = incoming_path(sha256)
    _write(path, data)
    IncomingInstance.objects.create(
        incoming=incoming,
        sop_instance_uid=parsed.sop_uid,
        series_instance_uid=parsed.series_uid,
        sha256=sha256,
        storage_name=str(path.relative_to(incoming_root())),
        received_at=now,
    )
    return True


def incoming_root() -> Path:
    return Path(settings.DICOM_INCOMING_DIR)


def incoming_path(sha256: str) -> Path:
    return incoming_root() / sha256[:2] / sha256


def _write(path: Path, data: bytes) -> None:
    """Write atomically (a reader never sees half a file), also over an existing
    copy: a completion may be about to remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# --- Complete collections ---------------------------------------------------------


def incoming_complete_quiet(*, now: datetime.datetime | None = None) -> list[int]:
    """Turn every collection that has been quiet for DICOM_QUIET_SECONDS into a
    queued study (or fail it with a readable reason). Returns the collections
    this call completed; safe to run twice and concurrently."""
    now = now or timezone.now()
    due = IncomingStudy.objects.filter(_due(now)).order_by("last_received_at")
    done = []
    for pk in due.values_list("pk", flat=True):
        if incoming_complete(incoming_id=pk, now=now):
            done.append(pk)
    return done


def incoming_complete_released(*, node: DicomNode, study_uids) -> list[int]:
    """The sender released the association that sent `study_uids`: complete their
    collections now when the node is one that sends a study in one association
    (DicomNode.complete_on_release); otherwise they wait for the quiet time."""
    if not (node.complete_on_release and study_uids):
        return []
    now = timezone.now()
    collecting = IncomingStudy.objects.filter(
        node=node,
        study_instance_uid__in=list(study_uids),
        state=CollectionState.COLLECTING,
    )
    return [
        pk
        for pk in collecting.values_list("pk", flat=True)
        if incoming_complete(incoming_id=pk, now=now, released=True)
    ]


def _due(now: datetime.datetime) -> Q:
    quiet = datetime.timedelta(seconds=settings.DICOM_QUIET_SECONDS)
    stalled = max(datetime.timedelta(seconds=STALLED_SECONDS), 3 * quiet)
    return Q(state=CollectionState.COLLECTING, last_received_at__lte=now - quiet) | Q(
        # Claimed but no study: its process died, or the study it joins was
        # being analysed (see _ingest); taken again.
        state=CollectionState.QUEUED,
        study=None,
        updated_at__lte=now - stalled,
    )


def incoming_complete(
    *, incoming_id: int, now: datetime.datetime, released: bool = False
) -> bool:
    """Claim one quiet collection (or, `released`, one still collecting whose sender
    said it is complete) and make it a study. False when another process claimed
    it first or it is no longer due."""
    due = Q(state=CollectionState.COLLECTING) if released else _due(now)
    claimed = IncomingStudy.objects.filter(due, pk=incoming_id).update(
        state=CollectionState.QUEUED, updated_at=timezone.now()
    )
    if not claimed:
        return False
    incoming = IncomingStudy.objects.select_related("node__site").get(pk=incoming_id)
    files = _files(incoming)
    try:
        with transaction.atomic():  # the study and its link to the collection
            study = _ingest(incoming, files)
            if study is not None:
                IncomingStudy.objects.filter(pk=incoming_id).update(study=study)
    except UploadError as exc:
        _fail(incoming, exc)
        _remove_files(files)
        return True
    if study is not None:
        _remove_files(files)
    return True


def _files(incoming: IncomingStudy) -> list[StoredFile]:
    rows = incoming.instances.order_by("received_at", "pk")
    return [
        StoredFile(incoming_root() / row.storage_name, f"{uid}.dcm", row.sha256)
        for row, uid in ((r, r.sop_instance_uid) for r in rows)
        if (incoming_root() / row.storage_name).is_file()
    ]


def _ingest(incoming: IncomingStudy, files: list[StoredFile]) -> Study | None:
    """The study these instances make, or join: None when the study they join is
    being analysed now (the collection is taken again later)."""
    node = incoming.node
    earlier = _earlier_study(incoming)
    if earlier is not None:
        outcome = study_add_instances(
            study_id=earlier.pk,
            files=files,
            last_instance_at=incoming.last_received_at,
            audit=_audit(node),
        )
        if outcome == MergeOutcome.BUSY:
            return None
        if outcome != MergeOutcome.READ:
            return earlier
    origin = Origin(
        arrival=Arrival.DICOM,
        received_from=node.ae_title,
        site=node.site,
        last_instance_at=incoming.last_received_at,
    )
    return study_receive(files=files, origin=origin, audit=_audit(node)).study


def _earlier_study(incoming: IncomingStudy) -> Study | None:
    earlier = (
        IncomingStudy.objects.filter(
            node=incoming.node, study_instance_uid=incoming.study_instance_uid
        )
        .exclude(pk=incoming.pk)
        .exclude(study=None)
        .order_by("-last_received_at")
        .select_related("study")
        .first()
    )
    return earlier.study if earlier is not None else None


def _audit(node: DicomNode) -> AuditContext:
    return AuditContext(ip_address=node.host or None, path=f"dicom:{node.ae_title}")


def _fail(incoming: IncomingStudy, exc: UploadError) -> None:
    reasons = "; ".join(f"{r['name']}: {r['reason']}" for r in exc.rejected[:10])
    message = exc.message + (f" ({reasons})" if reasons else "")
    IncomingStudy.objects.filter(pk=incoming.pk, study=None).update(
        state=CollectionState.FAILED, error_message=message[:2000]
    )
    audit_record(
        action="dicom.collection_failed",
        context=_audit(incoming.node),
        actor_username=incoming.node.ae_title,
        outcome=AuditOutcome.FAILURE,
        obj=incoming,
        detail={"reason": message[:500], "instances": incoming.instances.count()},
    )


def _remove_files(files: list[StoredFile]) -> None:
    """Remove received copies now stored as study files (or refused), unless a
    collection still collecting holds the same content."""
    shas = {f.sha256 for f in files}
    with transaction.atomic():
        storage.lock_contents(shas)
        held = set(
            IncomingInstance.objects.filter(
                sha256__in=shas, incoming__state=CollectionState.COLLECTING
            ).values_list("sha256", flat=True)
        )
        for f in files:
            if f.sha256 not in held:
                f.path.unlink(missing_ok=True)
