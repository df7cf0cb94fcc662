"""The one place where feedback calls ml/: index a data set and lock its test split,
export feedback studies as training images, train, evaluate, and check model files.
Django tests mock this module, except the end-to-end retraining test.

Indexing runs in a default-queue task (numpy, OpenCV, no TensorFlow); `train`,
`evaluate` and `model_load_check` import TensorFlow and run only on the training
worker.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.datasets import (
    ManifestRow,
    class_counts,
    cross_group_pairs,
    grouped_train_val_test,
    index_folder,
    read_manifest,
    write_manifest,
)
from ml.io.archive import data_archive_check, extract_data_archive
from ml.io.limits import LoadLimits
from ml.modelfile import ModelFileError, model_archive_unpack, model_card_load
from ml.synthetic import is_synthetic_dataset

__all__ = [
    "DatasetIndex",
    "ImageHash",
    "ManifestRow",
    "ModelFileError",
    "TrainOutcome",
    "architectures",
    "data_archive_extract",
    "data_archive_problems",
    "dataset_index",
    "evaluate",
    "export_dicom_files",
    "export_volume",
    "image_hash",
    "locked_copies",
    "manifest_fingerprint",
    "manifest_read",
    "manifest_write",
    "model_archive_unpack",
    "model_card_load",
    "model_load_check",
    "train",
    "with_prefix",
]


@dataclass
class DatasetIndex:
    """A data set split once into a training pool and a locked test split."""

    pool: list[ManifestRow]
    test: list[ManifestRow]
    counts: dict[str, list[int]]  # label -> [images, groups, split groups]
    duplicates: dict[str, Any]
    warnings: list[str]
    skipped: int
    synthetic: bool = False  # phantoms made by ml.synthetic
    test_counts: dict[str, list[int]] = field(default_factory=dict)  # [images, scans]


def architectures() -> dict[str, str]:
    """Architecture name -> description, for the job form (no Keras import)."""
    from ml.models import ARCHITECTURES

    return {name: spec.description for name, spec in ARCHITECTURES.items()}


def with_prefix(row: ManifestRow, prefix: str) -> ManifestRow:
    """The row with its path under ``prefix/`` (a folder of the training run)."""
    return replace(row, path=f"{prefix}/{row.path}")


def manifest_fingerprint(rows: Sequence[ManifestRow]) -> str:
    """sha256 over (content sha256, label) in path order: what training saw."""
    from ml.training.run import training_fingerprint

    return training_fingerprint(rows)


def manifest_write(rows: Sequence[ManifestRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(rows, path)


def manifest_read(path: Path) -> list[ManifestRow]:
    return read_manifest(path)


def _archive_limits(*, max_files: int, max_bytes: int) -> LoadLimits:
    # A training image is small; a member above 512 MiB is no image of ours.
    return LoadLimits(max_files=max_files, max_total_bytes=max_bytes)


def data_archive_problems(path: Path, *, max_files: int, max_bytes: int) -> list[str]:
    """Why a zip of training data cannot be a data set ([] when it can), read
    from its directory only."""
    limits = _archive_limits(max_files=max_files, max_bytes=max_bytes)
    return data_archive_check(path, limits=limits)


def data_archive_extract(
    path: Path, dest: Path, *, max_files: int, max_bytes: int
) -> Path:
    """Unpack a zip of training data into ``dest``; returns the folder to index.
    Raises ValueError naming what could not be unpacked."""
    limits = _archive_limits(max_files=max_files, max_bytes=max_bytes)
    return extract_data_archive(path, dest, limits=limits).root


def _binary(label: str) -> str:
    return "normal" if label == "normal" else "stroke"


def dataset_index(
    root: Path, *, group_regex: str, test_fraction: float, seed: int
) -> DatasetIndex:
    """Index ``root`` and choose the locked test split by split group (scan, with
    its duplicates), stratified by label. Raises ValueError when the split cannot
    hold both stroke and normal scans."""
    result = index_folder(root, group_regex=group_regex or None)
    rows = result.rows
    split = grouped_train_val_test(
        rows, fractions=(1.0 - test_fraction, 0.0, test_fraction), seed=seed
    )
    test = [rows[i] for i in split.test]
    pool = [rows[i] for i in split.train]
    for name, part in (("locked test split", test), ("training pool", pool)):
        found = {_binary(r.label) for r in part}
        if found != {"normal", "stroke"}:
            raise ValueError(
                f"The {name} would hold {sorted(found) or 'no'} scans only; it needs "
                "stroke and normal scans. Add scans or change the test fraction."
            )
    cross = cross_group_pairs(rows, result.duplicates)
    return DatasetIndex(
        pool=pool,
        test=test,
        counts={k: list(v) for k, v in class_counts(rows).items()},
        test_counts={k: list(v[:2]) for k, v in class_counts(test).items()},
        duplicates={
            "exact_clusters": len(result.duplicates.exact),
            "near_pairs": len(result.duplicates.near),
            "cross_group_pairs": len(cross),
            "examples": [list(c) for c in result.duplicates.exact[:5]]
            + [[a, b] for a, b, _, _ in cross[:5]],
        },
        warnings=list(result.warnings),
        skipped=len(result.skipped),
        synthetic=is_synthetic_dataset(root),
    )


# --- feedback studies as training images -------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_dicom_files(
    *, files: Sequence[Path], out_dir: Path, prefix: str, label: str, group: str
) -> list[ManifestRow]:
    """One row per DICOM slice file, linked (not copied) into ``out_dir``; each
    row's path is ``prefix``/file name, relative to the training run's data folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, source in enumerate(files):
        target = out_dir / f"{i:04d}.dcm"
        if not target.exists():
            os.symlink(source, target)
        rows.append(
            ManifestRow(f"{prefix}/{target.name}", label, group, _sha256(source), "")
        )
    return rows


def export_volume(
    *, volume_path: Path, units: str, out_dir: Path, prefix: str, label: str, group: str
) -> list[ManifestRow]:
    """Write each slice of a stored (D, H, W) float32 volume as an 8-bit PNG
    (brain window for Hounsfield units, as the indexer displays them) and return
    one row per slice."""
    import cv2

    from ml.display import BRAIN_WINDOW, window_slice

    volume = np.load(volume_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    centre, width = BRAIN_WINDOW
    for i, image in enumerate(volume):
        grey = window_slice(image, units=units, centre=centre, width=width)
        target = out_dir / f"{i:04d}.png"
        cv2.imwrite(str(target), grey)
        rows.append(
            ManifestRow(f"{prefix}/{target.name}", label, group, _sha256(target), "")
        )
    return rows


# --- feedback images against locked test splits --------------------------------------
# The indexer's near-duplicate rule (index_folder's defaults): perceptual hashes
# within 4 bits and 32-px thumbnails correlated at 0.99. On head CT a phash alone
# mostly encodes the head's outline, so different patients' slices often match it.
NEAR_DISTANCE = 4
NEAR_CORRELATION = 0.99


@dataclass(frozen=True)
class ImageHash:
    """sha256 of a file's bytes, and (for an image or DICOM slice the indexer can
    read) the phash and thumbnail it gives the displayed image ("" and b"" else)."""

    sha256: str
    phash: str = ""
    thumb: bytes = b""


def image_hash(path: Path) -> ImageHash:
    """Hash one file as the data set indexer hashes it, so that it compares with a
    locked split's manifest rows (brain window for CT DICOM, 8-bit images as is)."""
    from ml.datasets import _describe_file

    info = _describe_file((str(path), path.name))
    return ImageHash(info.sha256, info.phash, info.thumb)


def locked_copies(
    images: Sequence[ImageHash], rows: Sequence[ManifestRow], root: Path
) -> tuple[int, int]:
    """(exact, near): how many of ``images`` are byte copies of a locked row's file
    (same sha256), and how many others near duplicates of one (as the indexer
    decides, the thumbnail read from ``root``; a locked file that cannot be read
    any more counts on its phash alone)."""
    from ml.datasets import _correlation, _hash_ints

    locked = {r.sha256 for r in rows}
    exact = sum(image.sha256 in locked for image in images)
    others = [i for i in images if i.sha256 not in locked and i.phash]
    hashed = [r for r in rows if r.phash]
    if not others or not hashed:
        return exact, 0
    mine, theirs = (
        _hash_ints([i.phash for i in others]),
        _hash_ints([r.phash for r in hashed]),
    )
    close = np.bitwise_count(mine[:, None] ^ theirs[None, :]) <= NEAR_DISTANCE
    thumbs: dict[int, bytes] = {}
    near = 0
    for a, image in enumerate(others):
        for b in np.flatnonzero(close[a]).tolist():
            if b not in thumbs:
                thumbs[b] = _locked_thumb(root / hashed[b].path)
            if (
                not thumbs[b]
                or _correlation(image.thumb, thumbs[b]) >= NEAR_CORRELATION
            ):
                near += 1
                break
    return exact, near


def _locked_thumb(path: Path) -> bytes:
    try:
        return image_hash(path).thumb
    except OSError:
        return b""


# --- training and evaluation (training worker only) --------------------------------
@dataclass
class TrainOutcome:
    model_dir: Path | None
    cancelled: bool
    seconds_per_epoch: float
    peak_rss_mb: float
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    *,
    rows: Sequence[ManifestRow],
    data_root: Path,
    out_dir: Path,
    architecture: str,
    task: str,
    epochs: int,
    seed: int,
    image_size: int,
    name: str,
    version: str,
    cache_dir: Path,
    progress: Callable[[int, int, dict], bool | None],
) -> TrainOutcome:
    """Train on the training pool (plus feedback) only: the locked test split is
    never among ``rows``, so the run holds out nothing of its own for testing."""
    from ml.preprocess import PreprocessConfig
    from ml.training import TrainConfig, train_model

    config = TrainConfig(
        architecture=architecture,
        task=task,
        preprocessing=PreprocessConfig(size=image_size),
        epochs=epochs,
        seed=seed,
        cv=0,
        val_fraction=0.2,
        test_fraction=0.0,
        patience=max(4, epochs // 4),
        name=name,
        version=version,
        cache_dir=str(cache_dir),
        n_boot=200,
    )
    result = train_model(
        manifest=list(rows),
        data_root=data_root,
        config=config,
        out_dir=out_dir,
        progress=progress,
    )
    return TrainOutcome(
        model_dir=result.model_dir,
        cancelled=result.cancelled,
        seconds_per_epoch=result.seconds_per_epoch,
        peak_rss_mb=result.peak_rss_mb,
        history=result.history,
    )


def _roc_points(y: Sequence[int], p: Sequence[float]) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    if len(set(y)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(p))
    return {"fpr": fpr.round(4).tolist(), "tpr": tpr.round(4).tolist()}


def _compact(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("auc", "accuracy", "sensitivity", "specificity", "f1", "ci95", "n")
    out = {
        level: {k: report[level][k] for k in keep if k in report[level]}
        for level in ("slice", "study")
    }
    out["study"]["confusion_matrix"] = report["study"].get("confusion_matrix")
    out["studies"] = len(report["studies"]["names"])
    return out


def evaluate(
    *, model_dir: Path, rows: Sequence[ManifestRow], data_root: Path, cache_dir: Path
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """A model folder on the locked test split: metrics per slice and per study with
    95% study-bootstrap CIs at the model's own thresholds, and the study ROC curve."""
    from ml.evaluation import evaluate_predictions
    from ml.training.predict import predict_manifest

    pred = predict_manifest(
        model_dir=model_dir,
        manifest=list(rows),
        data_root=data_root,
        cache_dir=cache_dir,
    )
    report = evaluate_predictions(
        y_true=pred["y"],
        prob=pred["prob"],
        groups=pred["groups"],
        threshold=pred["threshold"],
        slice_threshold=pred["slice_threshold"],
        study_prob=pred["study_prob"],
        n_boot=500,
        seed=0,
    )
    studies = report["studies"]
    compact = _compact(report)
    compact["study"].update(_type_accuracy(pred["study_types"]))
    return compact, _roc_points(studies["labels"], studies["prob"])


def _type_accuracy(types: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """How often a stroke-type model names the right type of the stroke studies
    (whether or not it called them strokes); {} for other models."""
    strokes = [(true, said) for true, said in types.values() if true != "normal"]
    if not strokes:
        return {}
    right = sum(true == said for true, said in strokes)
    return {"type_accuracy": right / len(strokes), "type_n": len(strokes)}


def model_load_check(path: Path) -> None:
    """Load a model folder as the inference workers will (ModelFileError if not)."""
    from ml.inference import Predictor

    Predictor.load(path)
