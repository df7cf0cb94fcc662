"""What upload, processing and review share: a stored file as one record, the rule
that keeps server paths out of messages for users, and the stroke-type rule."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .. import storage
from ..models import Label, StudyFile


@dataclass(frozen=True)
class StoredFile:
    """One file of a study on the server: where it is, the name its uploader knows
    it by, and the sha256 of its content."""

    path: Path
    name: str
    sha256: str


def file_names(files: Iterable[StoredFile]) -> dict[str, str]:
    """Each file's server path → the uploader's name for it, the mapping ml.io and
    `scrub_paths` take."""
    return {str(f.path): f.name for f in files}


def stored_files(study_id: int) -> list[StoredFile]:
    """The study's files in storage (by name, StudyFile's order)."""
    root = storage.uploads_root()
    rows = StudyFile.objects.filter(study_id=study_id)
    return [
        StoredFile(root / storage_name, name, sha256)
        for storage_name, name, sha256 in rows.values_list(
            "storage_name", "original_name", "sha256"
        )
    ]


def _server_roots() -> list[str]:
    roots = {tempfile.gettempdir(), str(settings.DATA_DIR), str(settings.FILES_ROOT)}
    roots |= {str(Path(r).resolve()) for r in roots}
    return sorted(roots, key=len, reverse=True)


def scrub_paths(text: str, *, names: Mapping[str, str] | None = None) -> str:
    """A message for users names the file they uploaded, never a server path:
    each spooled or stored path in `names` becomes the user's file name, and any
    other path under the temporary folder or the data folder is removed."""
    for path, name in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    by_base = {Path(path).name: name for path, name in (names or {}).items()}
    pattern = "|".join(re.escape(root.rstrip("/")) for root in _server_roots())
    return re.sub(
        rf"(?:{pattern})/[^\s'\"]*",
        lambda m: by_base.get(Path(m.group(0)).name, "an uploaded file"),
        text,
    )


def stroke_type_for(*, label: str, stroke_type: str) -> str:
    """A stroke type belongs to a stroke finding only: a reading or a result of "no
    stroke" has none, whatever the model or the form sent with it."""
    return stroke_type if label == Label.STROKE else ""
