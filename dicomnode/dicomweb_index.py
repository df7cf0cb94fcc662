"""What the DICOMweb answers (dicomnode.dicomweb) are made of: the DICOM studies a
user may see, by StudyInstanceUID, and an index of their stored files read from the
files' headers (never their pixels).

The index of a study (its series, their instances and the attributes QIDO-RS
answers with) is kept in this process, keyed by the sha256s of the study's files:
it is derived from file contents alone, so it holds nothing about who asked, and a
content-addressed file never changes under its key. Who may see a study is decided
on every request, by the diagnosis selectors."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.core.cache import cache
from django.db.models import Max
from pydicom.datadict import dictionary_VR
from pydicom.filereader import read_partial
from pydicom.tag import Tag

from accounts.models import User
from accounts.selectors import NotVisible
from diagnosis import storage
from diagnosis.models import Study, StudyFile
from diagnosis.selectors import study_list_for_user

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# What QIDO-RS answers at each level (PS3.18 tables 10.6.3-3 to -5), read from the
# first file of the study or series, or from each instance.
STUDY_TAGS = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
)
SERIES_TAGS = (
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
)
INSTANCE_TAGS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "PhotometricInterpretation",
)
_INDEX_TAGS = [Tag(k) for k in (*STUDY_TAGS, *SERIES_TAGS, *INSTANCE_TAGS)]
_STUDY_HEX = {f"{Tag(k):08X}" for k in STUDY_TAGS}
_SERIES_HEX = {f"{Tag(k):08X}" for k in SERIES_TAGS}
_INSTANCE_HEX = {f"{Tag(k):08X}" for k in INSTANCE_TAGS}

# About 2 KB an instance: 2,000 studies of 30 slices hold some 120 MB at most.
INDEX_CACHE_STUDIES = 2000
# Reading every header of a 500-study worklist takes seconds: the index is shared
# between processes (and restarts) for a week.
SHARED_CACHE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Instance:
    """One stored file: where it is, and its instance-level attributes (DICOM JSON)."""

    path: Path
    sha256: str
    series_uid: str
    sop_uid: str
    transfer_syntax: str
    frames: int
    attrs: dict


@dataclass(frozen=True)
class Series:
    uid: str
    attrs: dict  # series-level DICOM JSON, from its first instance
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class StudyIndex:
    uid: str
    attrs: dict  # study-level DICOM JSON, from its first file
    series: tuple[Series, ...]

    @property
    def instances(self) -> list[Instance]:
        return [i for s in self.series for i in s.instances]

    def series_by_uid(self, uid: str) -> Series | None:
        return next((s for s in self.series if s.uid == uid), None)

    def modalities(self) -> list[str]:
        found = (first_value(s.attrs, "00080060") for s in self.series)
        return sorted({m for m in found if m})


def first_value(attrs: dict, tag: str):
    """The first value of `tag` in DICOM JSON (a PN's alphabetic form), or None."""
    values = attrs.get(tag, {}).get("Value") or [None]
    value = values[0]
    if isinstance(value, dict):
        return value.get("Alphabetic")
    return value


def element(tag: str | int, value=None) -> tuple[str, dict]:
    """One DICOM JSON element for `tag` (keyword or number) with `value` (a list, one
    value, or None for an empty element)."""
    number = Tag(tag)
    item: dict = {"vr": dictionary_VR(number)}
    if value not in (None, "", []):
        item["Value"] = value if isinstance(value, list) else [value]
    return f"{number:08X}", item


# --- Which studies ---------------------------------------------------------------
def dicom_studies_for_user(*, user: User):
    """The user's DICOM studies with a StudyInstanceUID, in worklist order: what
    DICOMweb serves. The same files uploaded by two clinicians are two rows with one
    UID; the newest stands for the UID."""
    studies = study_list_for_user(user=user).filter(source_kind="dicom")
    studies = studies.exclude(study_instance_uid="")
    newest = studies.order_by().values("study_instance_uid")
    return studies.filter(pk__in=newest.annotate(latest=Max("pk")).values("latest"))


def dicom_study_for_user(*, user: User, uid: str) -> Study:
    """The user's DICOM study with this StudyInstanceUID, or NotVisible (a 404,
    audited with the UID asked for)."""
    study = dicom_studies_for_user(user=user).filter(study_instance_uid=uid).first()
    if study is None:
        raise NotVisible(
            "No such study.",
            object_type=Study._meta.label_lower,
            object_id=uid[:64],
            exists=Study.objects.filter(study_instance_uid=uid).exists(),
        )
    return study


def not_found(kind: str, uid: str) -> NotVisible:
    """A series, instance or frame the (visible) study does not have."""
    return NotVisible(
        f"No such {kind}.", object_type=f"dicomweb.{kind}", object_id=uid, exists=False
    )


# --- The index ---------------------------------------------------------------------
class _Lru:
    def __init__(self, size: int):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_cache = _Lru(INDEX_CACHE_STUDIES)


def clear_cache() -> None:
    _cache.clear()


def study_files(study_ids: Iterable[int]) -> dict[int, list[tuple[Path, str]]]:
    """Each study's stored files (path, sha256), in one query for all of them."""
    root = storage.uploads_root()
    files: dict[int, list[tuple[Path, str]]] = {pk: [] for pk in study_ids}
    rows = StudyFile.objects.filter(study_id__in=list(files)).order_by(
        "study_id", "original_name", "pk"
    )
    for study_id, name, sha in rows.values_list("study_id", "storage_name", "sha256"):
        files[study_id].append((root / name, sha))
    return files


def _key(files: Sequence[tuple[Path, str]]) -> str:
    digest = hashlib.sha256("".join(sha for _, sha in files).encode()).hexdigest()
    return f"dicomweb-index:v1:{digest}"


def study_indexes(
    files_by_study: dict[int, list[tuple[Path, str]]],
) -> dict[int, StudyIndex]:
    """The index of each study (id -> its files): from this process's cache, else
    from the shared cache (one round trip for all), else from the files' headers
    (then shared). What is shared is derived from file contents only, under their
    hashes: no user, no access decision."""
    keys = {pk: _key(files) for pk, files in files_by_study.items() if files}
    found = {pk: _cache.get(key) for pk, key in keys.items()}
    missing = {key: pk for pk, key in keys.items() if found[pk] is None}
    shared = cache.get_many(list(missing)) if missing else {}
    built = {}
    for key, pk in missing.items():
        index = shared.get(key)
        if index is None:
            index = built[key] = _build_index(files_by_study[pk])
        found[pk] = index
        _cache.put(key, index)
    if built:
        cache.set_many(built, SHARED_CACHE_SECONDS)
    return found


def study_index(files: Sequence[tuple[Path, str]]) -> StudyIndex:
    """The index of a study made of `files` (path, sha256)."""
    if not files:
        return StudyIndex(uid="", attrs={}, series=())
    return study_indexes({0: list(files)})[0]


def index_for_study(study: Study) -> StudyIndex:
    return study_index(study_files([study.pk])[study.pk])


def _build_index(files: Sequence[tuple[Path, str]]) -> StudyIndex:
    headers = [(_header(path), path, sha) for path, sha in files]
    by_series: dict[str, list[tuple[dict, Instance]]] = {}
    for attrs, path, sha in headers:
        instance = _instance(attrs, path, sha)
        by_series.setdefault(instance.series_uid, []).append((attrs, instance))
    series = [_series(uid, members) for uid, members in by_series.items()]
    series.sort(key=lambda s: (_number(first_value(s.attrs, "00200011")), s.uid))
    first = headers[0][0] if headers else {}
    study_attrs = {k: v for k, v in first.items() if k in _STUDY_HEX}
    return StudyIndex(
        uid=str(first_value(first, "0020000D") or ""),
        attrs=study_attrs,
        series=tuple(series),
    )


_LAST_INDEX_TAG = max(_INDEX_TAGS)


def _past_index(tag, vr, length) -> bool:
    return tag > _LAST_INDEX_TAG


def _header(path: Path) -> dict:
    """The index attributes of a stored file as DICOM JSON, read up to the last of
    them (a CT header's later private groups are never parsed)."""
    with open(path, "rb") as handle:
        ds = read_partial(handle, stop_when=_past_index, specific_tags=_INDEX_TAGS)
    attrs = {f"{elem.tag:08X}": _json_element(elem) for elem in ds}
    ts = getattr(ds.file_meta, "TransferSyntaxUID", None) if ds.file_meta else None
    attrs["__ts__"] = str(ts or EXPLICIT_VR_LITTLE_ENDIAN)
    return attrs


def _json_element(elem) -> dict:
    """One element as DICOM JSON (PS3.18 F.2), for the text and number VRs the
    index holds: a third of the cost of pydicom's to_json_dict."""
    item: dict = {"vr": elem.VR}
    values = elem.value if elem.VM > 1 else [elem.value]
    if elem.VM == 0 or values in ([None], [""]):
        return item
    if elem.VR == "PN":
        item["Value"] = [{"Alphabetic": str(v)} for v in values]
    elif elem.VR == "IS" or elem.VR in ("US", "UL", "SS", "SL"):
        item["Value"] = [int(v) for v in values]
    elif elem.VR in ("DS", "FL", "FD"):
        item["Value"] = [float(v) for v in values]
    else:
        item["Value"] = [str(v) for v in values]
    return item


def _instance(attrs: dict, path: Path, sha: str) -> Instance:
    return Instance(
        path=path,
        sha256=sha,
        series_uid=str(first_value(attrs, "0020000E") or ""),
        sop_uid=str(first_value(attrs, "00080018") or ""),
        transfer_syntax=attrs["__ts__"],
        frames=int(first_value(attrs, "00280008") or 1),
        attrs={k: v for k, v in attrs.items() if k in _INSTANCE_HEX},
    )


def _series(uid: str, members: list[tuple[dict, Instance]]) -> Series:
    members.sort(key=lambda m: (_number(first_value(m[1].attrs, "00200013")),))
    attrs = {k: v for k, v in members[0][0].items() if k in _SERIES_HEX}
    return Series(uid=uid, attrs=attrs, instances=tuple(i for _, i in members))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("inf")


def full_header(path: Path) -> dict:
    """Every attribute of a stored file but its pixel data, as DICOM JSON (binary
    values inline)."""
    return pydicom.dcmread(path, stop_before_pixels=True).to_json_dict()
