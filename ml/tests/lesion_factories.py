"""Synthetic head-CT studies for the lesion-feature model, written as a user's data
set would be: 8-bit brain-window PNG slices named ``N (k).png`` in ``Normal/`` and
``Stroke/`` class folders, as brain-stroke-ct ships them.

The heads are ``ml.synthetic`` phantoms (skull, grey and white matter, ventricles;
``ml.brain.brain_study`` marks all but their top slice as brain slices); a stroke
study carries an intraparenchymal hematoma on a few slices, whose pixel mask the
phantom keeps. Used by ``ml/tests/test_lesion.py`` and the portal's end-to-end test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ml import synthetic

SIZE = 128  # slice side, pixels
SLICES = 10
TRAIN_PER_CLASS = 8
TRAIN_SEED = 100  # study seeds of the training set start here
HELD_OUT_SEED = 9000  # and those of held-out studies here: no phantom is shared


@dataclass(frozen=True)
class PngStudy:
    """One study on disk: its slice files (slice order) and the bleed's (D, H, W)
    bool mask on those slices (all False for a normal study)."""

    paths: list[Path]
    mask: np.ndarray

    @property
    def bleed_slices(self) -> list[int]:
        return [int(k) for k in np.nonzero(self.mask.any(axis=(1, 2)))[0]]


def head_phantom(*, bleed: bool, seed: int) -> synthetic.Phantom:
    """A normal head, or one with an intraparenchymal hematoma (HU volume)."""
    if bleed:
        return synthetic.make_phantom(
            label="hemorrhagic",
            lesion="intraparenchymal",
            size=SIZE,
            slices=SLICES,
            seed=seed,
        )
    return synthetic.make_phantom(label="normal", size=SIZE, slices=SLICES, seed=seed)


def write_study(
    folder: Path, *, bleed: bool, seed: int, scan_number: int = 1
) -> PngStudy:
    """Write one phantom as ``folder/<scan_number> (k).png``, k = 1..SLICES."""
    phantom = head_phantom(bleed=bleed, seed=seed)
    paths = synthetic.write_png_slices(phantom, folder, scan_number=scan_number)
    return PngStudy(paths=paths, mask=phantom.mask)


def write_class_folders(
    root: Path, *, per_class: int = TRAIN_PER_CLASS, seed: int = TRAIN_SEED
) -> Path:
    """``root/Normal`` and ``root/Stroke`` with ``per_class`` studies each; scan
    numbers run on across both folders, as in brain-stroke-ct. Returns ``root``."""
    for k in range(2 * per_class):
        bleed = k >= per_class
        write_study(
            root / ("Stroke" if bleed else "Normal"),
            bleed=bleed,
            seed=seed + k,
            scan_number=k + 1,
        )
    return root


def train_lesion_model(work: Path, *, name: str = "lesion-test") -> Path:
    """Index a synthetic data set and train a lesion-feature model on it through
    ``ml.lesion.train.lesion_train``; returns the model folder."""
    from ml.datasets import index_folder
    from ml.lesion.train import lesion_train
    from ml.preprocess import PreprocessConfig
    from ml.training.config import TrainConfig

    data = write_class_folders(work / "data")
    config = TrainConfig(
        architecture="lesion_features",
        preprocessing=PreprocessConfig(size=SIZE),
        cv=0,
        top_k=3,
        name=name,
        version="1",
    )
    rows = index_folder(data).rows
    result = lesion_train(
        rows=rows, data_root=data, config=config, out_dir=work / "run"
    )
    return Path(result.model_dir)


def empty_ring_slices(*, slices: int = 4, size: int = SIZE) -> np.ndarray:
    """(D, H, W) uint8: a bright elliptical shell with air inside and outside, like
    a plastic test object scanned in the brain window, with no brain in it."""
    out = np.zeros((slices, size, size), np.uint8)
    centre, axes = (size // 2, size // 2), (int(size * 0.36), int(size * 0.42))
    for image in out:
        cv2.ellipse(image, centre, axes, 0, 0, 360, 255, thickness=max(3, size // 32))
    return out


def write_slices(volume: np.ndarray, folder: Path, *, scan_number: int = 1):
    """Write (D, H, W) uint8 slices as ``folder/<scan_number> (k).png``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, image in enumerate(volume, start=1):
        paths.append(folder / f"{scan_number} ({k}).png")
        if not cv2.imwrite(str(paths[-1]), image):
            raise OSError(f"could not write {paths[-1]}")
    return paths
