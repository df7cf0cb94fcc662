"""Keep feedback out of training when its images are in a locked test split: a
study uploaded from a data set's locked split, confirmed as feedback and trained
on, would let the next model be judged on images it has learnt."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from diagnosis import storage as study_storage

from .. import ml_adapter
from ..models import DatasetStatus, FeedbackCase, TrainingDataset
from . import datasets


@dataclass(frozen=True)
class LockedSplit:
    dataset: TrainingDataset
    rows: list


@dataclass(frozen=True)
class KeptOut:
    case: FeedbackCase
    dataset: TrainingDataset
    images: int
    matched: int
    exact: int

    @property
    def reason(self) -> str:
        if self.exact == self.matched:
            kind = "exact copies"
        elif not self.exact:
            kind = "near duplicates"
        else:
            kind = f"{self.exact} exact copies, the others near duplicates"
        return (
            f"{self.matched} of its {self.images} images are in the locked test split "
            f"of data set {self.dataset} ({kind})."
        )


def locked_splits(*, log) -> list[LockedSplit]:
    """Every ready data set's locked split; one that cannot be read is logged (it
    cannot be checked against, and cannot judge a model either)."""
    splits = []
    for dataset in TrainingDataset.objects.filter(status=DatasetStatus.READY):
        try:
            rows = datasets.dataset_test_rows(dataset=dataset)
        except (OSError, ValueError) as exc:
            log(f"feedback: not checked against the locked split of {dataset}: {exc}")
            continue
        splits.append(LockedSplit(dataset, rows))
    return splits


def _case_images(case: FeedbackCase, exported: list, data_root: Path) -> tuple:
    """Hashes of the study's uploaded files, and of the training images exported
    from it that are not those files (DICOM slices are linked, not copied)."""
    uploads = [
        study_storage.uploads_root() / f.storage_name for f in case.study.files.all()
    ]
    known = {path.resolve() for path in uploads}
    made = [data_root / row.path for row in exported]
    made = [path for path in made if path.resolve() not in known]
    return tuple(
        [ml_adapter.image_hash(path) for path in paths if path.is_file()]
        for paths in (uploads, made)
    )


def _check(case, images: tuple, splits: list[LockedSplit]) -> KeptOut | None:
    """The first locked split holding the case's images: counted on the uploads and
    on the exported images alike, whichever shows more of them."""
    for split in splits:
        root = Path(split.dataset.root)
        found = [ml_adapter.locked_copies(part, split.rows, root) for part in images]
        matched = max(exact + near for exact, near in found)
        if matched:
            exact = max(exact for exact, _ in found)
            size = max(len(part) for part in images)
            return KeptOut(case, split.dataset, size, matched, exact)
    return None


def feedback_locked_check(
    *, cases: list[FeedbackCase], rows: list, data_root: Path, log
) -> list[KeptOut]:
    """The cases whose images (by sha256, or near-duplicate perceptual hash) are in
    any locked test split, each recorded on the case with the reason."""
    if not cases:
        return []
    splits = locked_splits(log=log)
    by_group = defaultdict(list)
    for row in rows:
        by_group[row.group].append(row)
    kept = []
    for case in cases:
        exported = by_group[datasets.feedback_group(case.study_id)]
        found = _check(case, _case_images(case, exported, data_root), splits)
        if found is not None:
            kept.append(found)
            FeedbackCase.objects.filter(pk=case.pk).update(
                kept_out_dataset=found.dataset, kept_out_reason=found.reason
            )
    return kept


def kept_out_lines(kept: list[KeptOut]) -> list[str]:
    """One job-log line per data set whose locked split held feedback images."""
    by_dataset = defaultdict(list)
    for item in kept:
        by_dataset[item.dataset.name].append(item)
    return [
        f"feedback: {len(items)} case(s) kept out of training: their images are in "
        f"the locked test split of data set {name} ("
        + "; ".join(
            f"case {i.case.pk}: {i.matched} of {i.images} images" for i in items
        )
        + ")"
        for name, items in by_dataset.items()
    ]
