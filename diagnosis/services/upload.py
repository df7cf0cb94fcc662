"""Ingest an upload: validate it by content and create a queued study, or refuse it
with a clear message and leave nothing behind."""

from __future__ import annotations

import datetime
import hashlib
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import Site, User

from .. import ml_adapter, storage
from ..models import Arrival, Series, Slice, Study, StudyFile, StudyStatus
from ..queue import study_enqueue
from .common import StoredFile, file_names, scrub_paths


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
ANALYSABLE_MODALITIES = ("CT", "MR")


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


def _spool(files: Sequence[UploadedFile], folder: Path) -> list[StoredFile]:
    """Write the uploaded files to a private folder, hashing them on the way."""
    spooled = []
    for index, upload in enumerate(files):
        path = folder / _safe_name(upload.name, index)
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for chunk in upload.chunks():
                digest.update(chunk)
                out.write(chunk)
        spooled.append(StoredFile(path, upload_name(upload.name), digest.hexdigest()))
    return spooled


def _content_hash(files: Iterable[StoredFile]) -> str:
    """The upload's identity: its files' contents, whatever their names or order."""
    return hashlib.sha256("".join(sorted(f.sha256 for f in files)).encode()).hexdigest()


def _rejected(load_rejected, files: Iterable[StoredFile] = ()) -> list[dict]:
    names = file_names(files)
    return [
        {"name": r.name, "reason": scrub_paths(r.reason, names=names)}
        for r in load_rejected
    ]


def _warnings(result, files: Iterable[StoredFile]) -> list[str]:
    names = file_names(files)
    return [scrub_paths(w, names=names) for w in result.warnings]


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


_DICOM_KEPT = (
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
    "image_orientation",
    "study_time",
    "series_instance_uid",
    "series_number",
    "stored_size",  # slices read reduced: their size as stored, and by how much
    "reduction",
)


def _dicom_metadata(metadata) -> dict:
    out = {}
    for key in _DICOM_KEPT:
        value = getattr(metadata, key, None)
        if value is not None:
            out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def study_create(
    *,
    user: User,
    files: Sequence[UploadedFile],
    clinical: dict | None = None,
    audit: AuditContext | None = None,
) -> StudyCreateOutcome:
    """Validate an upload by content and create a queued study, or refuse it with
    a clear message; a refused upload leaves no row and no file behind. The same
    files uploaded again by the same user lead to the existing study.

    Validation reads headers and a sample slice, not every pixel: the worker does
    that, and fails the study naming any file whose pixel data proves damaged."""
    _check_sizes(files)
    origin = Origin(uploaded_by=user, last_instance_at=timezone.now())
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        spooled = _spool(files, Path(tmp))
        content_hash = _content_hash(spooled)
        existing = origin.existing(content_hash)
        if existing is not None:
            return StudyCreateOutcome(study=existing, created=False)
        result = _check_upload(spooled)
        return _study_save(
            origin=origin,
            result=result,
            spooled=spooled,
            content_hash=content_hash,
            clinical=clinical or {},
            audit=audit,
        )


@dataclass(frozen=True)
class Origin:
    """Where a study came from: an uploader, or a node (or STOW sender) on the
    network, the site whose clinicians see it, and when its last file arrived."""

    uploaded_by: User | None = None
    arrival: str = Arrival.UPLOAD
    received_from: str = ""
    site: Site | None = None
    last_instance_at: datetime.datetime | None = None

    def existing(self, content_hash: str) -> Study | None:
        """The study these files already made. A user's: the same files uploaded
        (or STOW-sent) by that user. A node's: the same files received for the same
        site (a scanner re-sending a study, or two PACS routing it)."""
        studies = Study.objects.filter(content_hash=content_hash)
        if self.uploaded_by is not None:
            return studies.filter(uploaded_by=self.uploaded_by).first()
        studies = studies.filter(uploaded_by=None, site=self.site)
        if self.site is None:
            studies = studies.filter(received_from=self.received_from)
        return studies.first()

    def fields(self) -> dict:
        return {
            "uploaded_by": self.uploaded_by,
            "arrival": self.arrival,
            "received_from": self.received_from[:120],
            "site": self.site,
            "last_instance_at": self.last_instance_at,
        }


def study_receive(
    *,
    files: Sequence[StoredFile],
    origin: Origin,
    audit: AuditContext | None = None,
) -> StudyCreateOutcome:
    """Create a queued study from files already on the server (instances received
    by the DICOM listener or STOW-RS), validated exactly as an upload is: by
    content, localizers, secondary captures and non-images set aside with their
    reasons, CT/MR only, stored content-addressed, rows in one transaction, the
    analysis enqueued on commit. Raises UploadError naming what was wrong; nothing
    is saved then. The files are copied into storage: the caller removes its own.
    The same files from the same origin again lead to the existing study."""
    if not files:
        raise UploadError("No instances were received.")
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise UploadError(too_many_files_message(len(files)))
    content_hash = _content_hash(files)
    existing = origin.existing(content_hash)
    if existing is not None:
        return StudyCreateOutcome(study=existing, created=False)
    result = _check_upload(list(files))
    return _study_save(
        origin=origin,
        result=result,
        spooled=list(files),
        content_hash=content_hash,
        clinical={},
        audit=audit,
    )


def _check_upload(spooled: list[StoredFile]):
    names = file_names(spooled)
    try:
        result = ml_adapter.check_upload([f.path for f in spooled], names=names)
    except ml_adapter.StudyLoadError as exc:
        rejected = _rejected(getattr(exc, "rejected", []), spooled)
        message = f"Nothing in this upload could be used: {exc}"
        raise UploadError(scrub_paths(message, names=names), rejected) from exc
    _check_modality(result.metadata, names=result.consumed)
    return result


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
    *, origin: Origin, result, spooled, content_hash, clinical, audit
) -> StudyCreateOutcome:
    """Store the files and create the rows in one transaction, holding a lock per
    file content: the same files sent twice at once (a double click, the form and
    the API) make one study, and a refused upload never deletes a stored file that
    another upload, still in its transaction, has just found there."""
    used = used_files(result, spooled)
    with transaction.atomic():
        storage.lock_contents(f.sha256 for f in used)
        existing = origin.existing(content_hash)
        if existing is not None:
            return StudyCreateOutcome(study=existing, created=False)
        new_files: list[Path] = []
        try:
            stored = _store(used, new_files)
            study = _study_rows(
                origin=origin,
                result=result,
                spooled=spooled,
                stored=stored,
                content_hash=content_hash,
                clinical=clinical,
            )
            _audit_created(study, origin=origin, files=len(spooled), audit=audit)
        except Exception:
            storage.remove_quietly(new_files)  # nothing half-saved; locks still held
            raise
        transaction.on_commit(lambda: study_enqueue(study_id=study.pk))
    return StudyCreateOutcome(
        study=study,
        created=True,
        rejected=_rejected(result.rejected, spooled),
        warnings=_warnings(result, spooled),
    )


def files_holding(
    files: Sequence[StoredFile], names: Iterable[str]
) -> list[StoredFile]:
    """The files that hold the slices `names` (as ml.io names them): a file by its
    own name, a zip by its members' ("upload.zip/IM1.dcm")."""
    wanted = set(names)
    zips = {name.split("/", 1)[0] for name in wanted if "/" in name}
    return [f for f in files if f.name in wanted or f.name in zips]


def used_files(result, files: Sequence[StoredFile]) -> list[StoredFile]:
    """The files a study keeps: those holding the analysed series' slices and its
    other series' (all of them when none can be told, as for an unnamed zip)."""
    names = [*result.consumed, *(n for s in result.series for n in s.consumed)]
    return files_holding(files, names) or list(files)


def _store(used: list[StoredFile], new_files: list[Path]) -> list[StoredFile]:
    """Move the spooled files into content-addressed storage: each becomes the
    stored file at its final path. Files stored for the first time are added to
    `new_files`, which a failed upload removes."""
    stored = []
    for spooled in used:
        target, is_new = storage.store_upload(spooled.path, spooled.sha256)
        if is_new:
            new_files.append(target)
        stored.append(StoredFile(target, spooled.name, spooled.sha256))
    return stored


def _audit_created(study: Study, *, origin: Origin, files: int, audit) -> None:
    detail = {"files": files, "slices": study.slice_count}
    if origin.arrival != Arrival.UPLOAD:
        detail |= {"arrival": origin.arrival, "received_from": origin.received_from}
    audit_record(
        action="study.upload" if origin.arrival == Arrival.UPLOAD else "study.receive",
        context=audit,
        actor=origin.uploaded_by,
        obj=study,
        detail=detail,
    )


def acquired_at(metadata) -> datetime.datetime | None:
    """When the scan was made (from the DICOM headers), in the portal's zone: the
    scanner's clock is read as TIME_ZONE's unless its header gave an offset."""
    moment = getattr(metadata, "acquired_at", None)
    if moment is None:
        return None
    if timezone.is_naive(moment):
        try:
            return timezone.make_aware(moment)
        except (ValueError, OverflowError):  # e.g. a time the DST change skipped
            return None
    return moment


def _study_rows(
    *, origin: Origin, result, spooled, stored, content_hash, clinical
) -> Study:
    metadata = result.metadata
    study = Study(
        **origin.fields(),
        acquired_at=acquired_at(metadata),
        status=StudyStatus.QUEUED,
        queued_at=timezone.now(),
        content_hash=content_hash,
        source_kind=metadata.source_kind,
        units=metadata.units,
        modality=(metadata.modality or "CT")[:8],
        slice_count=len(result.slices),
        progress_total=len(result.slices),
        rejected_files=_rejected(result.rejected, spooled),
        warnings=_warnings(result, spooled),
        dicom_metadata=_dicom_metadata(metadata),
        **_clinical_from(metadata, clinical),
    )
    study.full_clean(exclude=["uploaded_by", "site"])
    study.save()
    _file_rows(study, result=result, stored=stored)
    return study


def _file_rows(study: Study, *, result, stored: list[StoredFile]) -> None:
    StudyFile.objects.bulk_create(
        StudyFile(
            study=study,
            original_name=f.name[:300],
            sha256=f.sha256,
            size=f.path.stat().st_size,
            storage_name=str(f.path.relative_to(storage.uploads_root())),
        )
        for f in stored
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
    _series_rows(study, result=result, stored=stored)


def _series_rows(study: Study, *, result, stored: list[StoredFile]) -> None:
    """The study's other series (ml.io kept them within the upload's limits), to be
    read for the viewer by the worker; numbered from 1 (0 is the analysed one)."""
    Series.objects.bulk_create(
        Series(
            study=study,
            index=i,
            series_instance_uid=info.uid[:64],
            number=info.metadata.series_number,
            description=(info.metadata.series_description or "")[:200],
            slice_count=len(info.slices),
            dicom_metadata=_dicom_metadata(info.metadata),
            files=sorted({f.sha256 for f in files_holding(stored, info.consumed)}),
            warnings=_warnings(info, stored),
        )
        for i, info in enumerate(result.series, start=1)
    )
