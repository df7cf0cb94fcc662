"""Where study files live: uploads under their sha256, derived files per study, all
under FILES_ROOT, which the web server never serves directly."""

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import connection


def uploads_root() -> Path:
    return Path(settings.FILES_ROOT) / "uploads"


def upload_path(sha256: str) -> Path:
    return uploads_root() / sha256[:2] / sha256


def study_dir(study_id: int) -> Path:
    return Path(settings.FILES_ROOT) / "studies" / str(study_id)


def volume_path(study_id: int, *, series: int = 0) -> Path:
    """The volume the viewer shows: the analysed series' (0), or another series'
    (diagnosis.models.Series.index), stored for display only."""
    name = "volume.npy" if series == 0 else f"volume-series{series}.npy"
    return study_dir(study_id) / name


def heatmap_path(study_id: int, name: str) -> Path:
    return study_dir(study_id) / "heatmaps" / name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_upload(source: Path, sha256: str) -> tuple[Path, bool]:
    """Move a validated file into content-addressed storage. Returns the stored path
    and whether it is new (an identical file may be stored already)."""
    target = upload_path(sha256)
    if target.exists():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    # Named per writer: two writers of one content never share a half-written file.
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # atomic: a reader never sees half a file
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise
    return target, True


def remove_quietly(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def lock_contents(sha256s: Iterable[str]) -> None:
    """Transaction-scoped PostgreSQL advisory locks on file contents (by sha256),
    taken in one order so that two writers cannot deadlock: an upload, a received
    instance and the removal of a completed collection's copy of the same content
    never interleave. SQLite needs none: its transactions start IMMEDIATE, one
    writer at a time."""
    if connection.vendor != "postgresql":
        return
    keys = sorted({int(sha[:15], 16) for sha in sha256s})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(%s::bigint[]) AS k ORDER BY k) AS keys",
            [keys],
        )
