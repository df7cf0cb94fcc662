"""Writes for training data sets: register a server folder or an uploaded zip,
index it once (in a task, which unpacks the zip) and lock its test split; export
confirmed feedback as training images."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditContext, audit_record
from accounts.models import User
from diagnosis import storage as study_storage

from .. import ml_adapter, queue
from ..models import CaseStatus, DatasetStatus, FeedbackCase, TrainingDataset

logger = logging.getLogger(__name__)


def dataset_dir(dataset: TrainingDataset) -> Path:
    return Path(settings.DATASETS_DIR) / str(dataset.pk)


def pool_manifest_path(dataset: TrainingDataset) -> Path:
    return dataset_dir(dataset) / "training-pool.csv"


def test_manifest_path(dataset: TrainingDataset) -> Path:
    return dataset_dir(dataset) / "locked-test.csv"


def _allowed_folder(root: str) -> Path:
    folder = Path(root).expanduser().resolve()
    allowed = [Path(d).resolve() for d in settings.TRAINING_DATA_DIRS]
    if not any(folder == d or d in folder.parents for d in allowed):
        raise ValidationError(
            {
                "root": "Data sets must lie under "
                + " or ".join(str(d) for d in allowed)
                + " (TRAINING_DATA_DIRS)."
            }
        )
    if not folder.is_dir():
        raise ValidationError({"root": f"{folder} is not a folder on the server."})
    return folder


@transaction.atomic
def dataset_register(
    *,
    name: str,
    by: User,
    root: str = "",
    archive: UploadedFile | None = None,
    group_regex: str = "",
    test_fraction: float = 0.2,
    seed: int = 0,
    audit: AuditContext | None = None,
) -> TrainingDataset:
    """Record a data set from a server folder or an uploaded zip, and queue its
    indexing (which unpacks the zip first); the locked test split is chosen by
    that indexing, once. A refused zip leaves no row and no file behind."""
    if bool(root) == (archive is not None):
        raise ValidationError("Give either a folder on the server or a zip file.")
    folder = str(_allowed_folder(root)) if root else ""
    _check_not_registered(folder)
    if not 0.05 <= test_fraction <= 0.5:
        raise ValidationError({"test_fraction": "Choose between 0.05 and 0.5."})
    if TrainingDataset.objects.filter(name=name).exists():
        raise ValidationError({"name": "A data set of this name exists."})
    dataset = TrainingDataset.objects.create(
        name=name,
        root=folder,
        archive_name=archive.name if archive else "",
        archive_bytes=archive.size if archive else 0,
        group_regex=group_regex,
        test_fraction=test_fraction,
        seed=seed,
        created_by=by,
    )
    if archive is not None:
        _archive_store(dataset, archive)
    audit_record(
        action="dataset.register",
        context=audit,
        actor=by,
        obj=dataset,
        detail={
            "root": folder,
            "archive": dataset.archive_name,
            "archive_bytes": dataset.archive_bytes,
            "test_fraction": test_fraction,
        },
    )
    transaction.on_commit(lambda: queue.dataset_index_enqueue(dataset_id=dataset.pk))
    return dataset


def _check_not_registered(folder: str) -> None:
    """Two splits of one folder would let one data set's training pool hold the
    other's locked test scans."""
    if not folder:
        return
    twin = (
        TrainingDataset.objects.exclude(status=DatasetStatus.FAILED)
        .filter(root=folder)
        .first()
    )
    if twin is not None:
        raise ValidationError(
            {
                "root": f"{folder} is registered already, as data set {twin}. A "
                "second split of the same scans would train on the first one's "
                "locked test scans."
            }
        )


def archive_path(dataset: TrainingDataset) -> Path:
    return dataset_dir(dataset) / "upload.zip"


def _archive_store(dataset: TrainingDataset, archive: UploadedFile) -> None:
    """Keep the zip for the index task, or refuse it (naming the reason) and
    remove what was written; the caller's transaction drops the row."""
    limit = settings.DATASET_UPLOAD_MAX_BYTES
    if archive.size > limit:
        raise ValidationError(
            {"archive": f"{archive.name} is larger than {limit // 2**20} MiB."}
        )
    folder = dataset_dir(dataset)
    shutil.rmtree(folder, ignore_errors=True)  # left by a request that died
    folder.mkdir(parents=True)
    try:
        with archive_path(dataset).open("wb") as out:
            for chunk in archive.chunks():
                out.write(chunk)
        problems = ml_adapter.data_archive_problems(
            archive_path(dataset), **_archive_limits()
        )
        if problems:
            raise ValidationError(
                {"archive": f"{archive.name} cannot be used: " + "; ".join(problems)}
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _archive_limits() -> dict[str, int]:
    return {
        "max_files": settings.DATASET_MAX_FILES,
        "max_bytes": settings.DATASET_UNPACKED_MAX_BYTES,
    }


def dataset_index(*, dataset_id: int) -> str:
    """Index the folder and store both manifests. Runs once: a data set that is
    already indexed keeps its split (the split must never move)."""
    dataset = TrainingDataset.objects.get(pk=dataset_id)
    if dataset.status != DatasetStatus.INDEXING:
        return dataset.status
    try:
        if dataset.archive_name:
            _archive_unpack(dataset)
        index = ml_adapter.dataset_index(
            Path(dataset.root),
            group_regex=dataset.group_regex,
            test_fraction=dataset.test_fraction,
            seed=dataset.seed,
        )
    except (ValueError, OSError) as exc:
        TrainingDataset.objects.filter(pk=dataset.pk).update(
            status=DatasetStatus.FAILED, error_message=str(exc)[:2000]
        )
        if dataset.archive_name:  # an upload that cannot be used takes no disk
            shutil.rmtree(dataset_dir(dataset), ignore_errors=True)
        return DatasetStatus.FAILED
    ml_adapter.manifest_write(index.pool, pool_manifest_path(dataset))
    ml_adapter.manifest_write(index.test, test_manifest_path(dataset))
    rows = index.pool + index.test
    TrainingDataset.objects.filter(pk=dataset.pk).update(
        status=DatasetStatus.READY,
        images=len(rows),
        groups=len({r.group for r in rows}),
        split_groups=len({r.split_group or r.group for r in rows}),
        class_counts=index.counts,
        duplicates=index.duplicates,
        warnings=index.warnings + _overlap_warnings(dataset, index),
        test_class_counts=index.test_counts,
        synthetic=index.synthetic,
        skipped=index.skipped,
        locked_test_groups=sorted({r.split_group or r.group for r in index.test}),
        test_images=len(index.test),
        fingerprint=ml_adapter.manifest_fingerprint(rows),
        test_fingerprint=ml_adapter.manifest_fingerprint(index.test),
        indexed_at=timezone.now(),
    )
    return DatasetStatus.READY


def _overlap_warnings(dataset: TrainingDataset, index) -> list[str]:
    """Images (by content) that one data set trains on and another tests on: a
    model is then judged on images it has seen, and its figures are inflated."""
    pool, test = {r.sha256 for r in index.pool}, {r.sha256 for r in index.test}
    notes = []
    others = TrainingDataset.objects.filter(status=DatasetStatus.READY)
    for other in others.exclude(pk=dataset.pk):
        try:
            their_pool = {r.sha256 for r in dataset_training_rows(dataset=other)}
            their_test = {r.sha256 for r in dataset_test_rows(dataset=other)}
        except (OSError, ValueError):
            continue
        if seen := len(test & their_pool):
            notes.append(
                f"{seen} image(s) of this locked test split are in the training "
                f"pool of {other}: a model trained on {other} is judged here on "
                "images it has seen."
            )
        if lent := len(pool & their_test):
            notes.append(
                f"{lent} image(s) of this training pool are in the locked test "
                f"split of {other}: a model trained here is judged on {other} on "
                "images it has seen."
            )
    return notes


def _archive_unpack(dataset: TrainingDataset) -> None:
    """Unpack the uploaded zip once; a run that died halfway starts over."""
    archive = archive_path(dataset)
    if not archive.exists():
        return  # unpacked by an earlier run
    target = dataset_dir(dataset) / "files"
    shutil.rmtree(target, ignore_errors=True)
    try:
        root = ml_adapter.data_archive_extract(archive, target, **_archive_limits())
    except ValueError as exc:
        raise ValueError(f"{dataset.archive_name}: {exc}") from exc
    TrainingDataset.objects.filter(pk=dataset.pk).update(root=str(root))
    dataset.root = str(root)
    archive.unlink()


def dataset_training_rows(*, dataset: TrainingDataset) -> list:
    """The training pool, checked against the stored locked split: a row of a
    locked group here means the files on disk were tampered with."""
    rows = ml_adapter.manifest_read(pool_manifest_path(dataset))
    locked = set(dataset.locked_test_groups)
    leaked = [r.path for r in rows if (r.split_group or r.group) in locked]
    if leaked:
        raise ValueError(
            f"{len(leaked)} training image(s) belong to the locked test split, "
            f"e.g. {leaked[0]}"
        )
    return rows


def dataset_test_rows(*, dataset: TrainingDataset) -> list:
    rows = ml_adapter.manifest_read(test_manifest_path(dataset))
    if ml_adapter.manifest_fingerprint(rows) != dataset.test_fingerprint:
        raise ValueError("The locked test manifest changed since registration.")
    return rows


# --- feedback export ------------------------------------------------------------
def _case_label(case: FeedbackCase, task: str) -> str:
    if task == "type" and case.final_label == "stroke":
        return case.stroke_type or "stroke"
    return case.final_label


def feedback_group(study_id: int) -> str:
    """The manifest group of a feedback study's training images."""
    return f"feedback study {study_id}"


def feedback_export(*, cases, out_dir: Path, task: str = "binary") -> list:
    """Confirmed cases as manifest rows under ``out_dir`` (``feedback/...`` paths),
    each study its own group so its slices stay on one side of every split. A
    study whose files are gone is skipped with a log line, not fatal."""
    rows = []
    for case in cases:
        if case.status != CaseStatus.CONFIRMED:
            raise ValueError(f"case {case.pk} is not confirmed")
        study = case.study
        label = _case_label(case, task)
        if task == "type" and label == "stroke":
            logger.info("case %s: stroke type unknown, left out", case.pk)
            continue
        prefix = f"feedback/study-{study.pk}"
        group = feedback_group(study.pk)
        files = [
            study_storage.uploads_root() / f.storage_name for f in study.files.all()
        ]
        try:
            if study.source_kind == "dicom" and len(files) == study.slice_count:
                rows += ml_adapter.export_dicom_files(
                    files=files,
                    out_dir=out_dir / prefix,
                    prefix=prefix,
                    label=label,
                    group=group,
                )
            else:
                rows += ml_adapter.export_volume(
                    volume_path=study_storage.volume_path(study.pk),
                    units=study.units,
                    out_dir=out_dir / prefix,
                    prefix=prefix,
                    label=label,
                    group=group,
                )
        except OSError as exc:
            logger.warning("case %s: study files unavailable (%s)", case.pk, exc)
    return rows
