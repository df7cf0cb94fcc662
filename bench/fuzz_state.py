"""What a fuzz run left behind, told from inside the portal (``manage.py shell -c
"from bench.fuzz_state import report; report()"``): one JSON line on stdout."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from django.conf import settings

from diagnosis import storage
from diagnosis.models import Slice, Study, StudyFile

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _texts() -> list[str]:
    texts = []
    for s in Study.objects.all():
        texts += [s.error_message, s.outside_scope_reason, s.patient_name]
        texts += [s.patient_id, s.study_description, s.clinical_notes]
        texts += [json.dumps(v) for v in (s.rejected_files, s.warnings)]
    texts += list(Slice.objects.values_list("source_name", flat=True))
    texts += list(StudyFile.objects.values_list("original_name", flat=True))
    return [t for t in texts if t]


def _storage() -> dict:
    root = storage.uploads_root()
    referenced = set(StudyFile.objects.values_list("storage_name", flat=True))
    stored = {str(p.relative_to(root)) for p in _files(root)}
    studies = Path(settings.FILES_ROOT) / "studies"
    ids = {str(i) for i in Study.objects.values_list("pk", flat=True)}
    ready = Study.objects.filter(status="ready").values_list("pk", flat=True)
    heatmaps = Slice.objects.exclude(heatmap_name="").values_list(
        "study_id", "heatmap_name"
    )
    return {
        "file_rows_without_file": sum(1 for n in referenced if not (root / n).exists()),
        "orphan_upload_files": len(stored - referenced),
        "partial_files": sum(1 for p in _files(root) if p.name.endswith(".partial")),
        "orphan_study_folders": sum(
            1
            for p in (studies.iterdir() if studies.exists() else [])
            if p.name not in ids
        ),
        "claim_named_leftovers": sum(
            1 for p in _files(studies) if p.name.startswith("volume-")
        ),
        "ready_without_volume": sum(
            1 for i in ready if not storage.volume_path(i).exists()
        ),
        "heatmap_rows_without_file": sum(
            1 for i, n in heatmaps if not storage.heatmap_path(i, n).exists()
        ),
        "temporary_files_left": len(_files(Path(tempfile.gettempdir()))),
        "temporary_files_examples": [
            p.name for p in _files(Path(tempfile.gettempdir()))[:5]
        ],
    }


def report() -> None:
    roots = [str(settings.DATA_DIR), "/tmp/", str(settings.BASE_DIR)]  # noqa: S108 - looked for, not used
    texts = _texts()
    failed = Study.objects.filter(status="failed").values_list(
        "error_message", flat=True
    )
    state = {
        "studies": Study.objects.count(),
        "by_status": {
            k: Study.objects.filter(status=k).count()
            for k in ("queued", "processing", "ready", "failed")
        },
        "not_final": Study.objects.filter(status__in=["queued", "processing"]).count(),
        "studies_without_files": Study.objects.filter(files__isnull=True).count(),
        **_storage(),
        "db_texts_with_control_characters": sum(1 for t in texts if _CONTROL.search(t)),
        "db_texts_with_server_paths": sum(
            1 for t in texts if any(r in t for r in roots)
        ),
        "failed_messages": sorted({m[:160] for m in failed})[:40],
    }
    print(json.dumps(state))
