"""Training data: a disk cache of preprocessed slices and Keras batch streams.

The cache is one ``.npy`` file (N, S, S, C) float32 per (manifest, preprocessing)
pair, opened as a memmap: preprocessing a 650-px JPEG costs milliseconds, reading a
cached 128-px slice microseconds, so k-fold CV and repeated runs pay it once, and
memory stays flat because batches are read from the memmap.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from ml.datasets import ManifestRow
from ml.modelfile import TASK_CLASSES
from ml.preprocess import AugmentConfig, PreprocessConfig, augment, preprocess_volume

CACHE_FORMAT = 1


def label_index(label: str, *, task: str) -> int:
    """Class index of a manifest label: binary maps every stroke kind to 1."""
    if task == "binary":
        return 0 if label == "normal" else 1
    classes = TASK_CLASSES[task]
    if label not in classes:
        raise ValueError(f"label {label!r} has no class in task {task!r} {classes}")
    return classes.index(label)


def default_cache_dir() -> Path:
    """``$ML_CACHE_DIR`` or ``~/.cache/stroke-portal-ml``."""
    env = os.environ.get("ML_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stroke-portal-ml"


def cache_key(rows: Sequence[ManifestRow], config: PreprocessConfig) -> str:
    """sha256 over the rows' paths and contents' sha256 and the preprocessing."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT}".encode())
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for row in rows:
        digest.update(f"{row.path}\0{row.sha256}\n".encode())
    return digest.hexdigest()[:32]


def _preprocess_file(path: Path, config: PreprocessConfig) -> np.ndarray:
    from ml.io import load_study

    loaded = load_study([path])
    volume = preprocess_volume(
        loaded.volume, units=loaded.metadata.units, config=config
    )
    return volume[len(volume) // 2]


def slice_cache(
    *,
    rows: Sequence[ManifestRow],
    data_root: str | Path,
    config: PreprocessConfig,
    cache_dir: str | Path | None = None,
    workers: int = 2,
) -> np.ndarray:
    """(N, S, S, C) float32 memmap of every row's preprocessed image, built once.

    Each manifest row is one image file read with ``ml.io.load_study`` (multi-slice
    files give their middle slice). The file is written under a temporary name and
    renamed, so an interrupted build never leaves a half cache.
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"slices-{cache_key(rows, config)}.npy"
    if not path.is_file():
        _build_cache(rows, Path(data_root), config, path, workers)
    return np.load(path, mmap_mode="r")


def _build_cache(
    rows: Sequence[ManifestRow],
    root: Path,
    config: PreprocessConfig,
    path: Path,
    workers: int,
) -> None:
    shape = (len(rows), config.size, config.size, config.channels)
    partial = path.with_suffix(f".{os.getpid()}.partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
    paths = [root / row.path for row in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} manifest file(s) missing, e.g. {missing[0]}")
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i, image in enumerate(
            pool.map(lambda p: _preprocess_file(p, config), paths)
        ):
            out[i] = image
    out.flush()
    del out
    partial.replace(path)


def study_members(
    rows: Sequence[ManifestRow], indices: Sequence[int]
) -> list[list[int]]:
    """Row indices per study (``group``), slices in file-name order, studies sorted."""
    from ml.io import slice_order_key

    members: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        members[rows[i].group].append(i)
    return [
        sorted(members[g], key=lambda i: slice_order_key(rows[i].path))
        for g in sorted(members)
    ]


class SliceBatches(keras.utils.PyDataset):
    """Batches (x (B, S, S, C), y one-hot (B, K), sample weight (B,)) of slices.

    Training batches are shuffled each epoch and augmented; ``fraction`` < 1 draws
    that part of the slices per epoch.
    """

    def __init__(
        self,
        *,
        cache: np.ndarray,
        indices: Sequence[int],
        labels: np.ndarray,
        classes: int,
        batch_size: int,
        class_weight: dict[int, float] | None = None,
        augment_config: AugmentConfig | None = None,
        shuffle: bool = False,
        fraction: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.cache, self.all = cache, np.asarray(indices, dtype=int)
        self.labels, self.classes, self.batch_size = labels, classes, batch_size
        self.class_weight, self.augment_config = class_weight or {}, augment_config
        self.shuffle, self.fraction, self.seed, self.epoch = shuffle, fraction, seed, 0
        self.order = self.all
        self.on_epoch_end()

    def __len__(self) -> int:
        count = max(1, round(len(self.all) * self.fraction))
        return -(-count // self.batch_size)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.order = rng.permutation(self.all)
        self.epoch += 1

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start = index * self.batch_size
        chosen = np.sort(self.order[start : start + self.batch_size])
        x = np.asarray(self.cache[chosen], dtype=np.float32)
        if self.augment_config is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            x = np.stack(
                [augment(img, rng=rng, config=self.augment_config) for img in x]
            )
        y = np.eye(self.classes, dtype=np.float32)[self.labels[chosen]]
        w = np.array(
            [self.class_weight.get(int(c), 1.0) for c in self.labels[chosen]],
            dtype=np.float32,
        )
        return x, y, w


class StudyBatches(keras.utils.PyDataset):
    """One study per batch: x (1, D, S, S, C), y {"study": (1, K), "slices":
    (1, D, 1) weak labels}, sample weights per output. All slices of a study get the
    same augmentation (one rng seed per study and epoch)."""

    def __init__(
        self,
        *,
        cache: np.ndarray,
        studies: Sequence[Sequence[int]],
        labels: np.ndarray,
        classes: int,
        class_weight: dict[int, float] | None = None,
        augment_config: AugmentConfig | None = None,
        shuffle: bool = False,
        max_slices: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.cache, self.studies = cache, [list(s) for s in studies]
        self.labels, self.classes = labels, classes
        self.class_weight, self.augment_config = class_weight or {}, augment_config
        self.shuffle, self.max_slices, self.seed, self.epoch = (
            shuffle,
            max_slices,
            seed,
            0,
        )
        self.order = list(range(len(self.studies)))
        self.on_epoch_end()

    def __len__(self) -> int:
        return len(self.studies)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.order = [int(i) for i in rng.permutation(len(self.studies))]
        self.epoch += 1

    def study_slices(self, study: int) -> list[int]:
        """Row indices of a study, evenly thinned to at most ``max_slices``."""
        members = self.studies[study]
        if len(members) <= self.max_slices:
            return members
        keep = np.linspace(0, len(members) - 1, self.max_slices).round().astype(int)
        return [members[k] for k in keep]

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict, dict]:
        members = self.study_slices(self.order[index])
        x = np.asarray(self.cache[members], dtype=np.float32)
        if self.augment_config is not None:
            seed = [self.seed, self.epoch, index]
            x = np.stack(
                [
                    augment(
                        img, rng=np.random.default_rng(seed), config=self.augment_config
                    )
                    for img in x
                ]
            )
        label = int(self.labels[members[0]])
        weight = np.float32(self.class_weight.get(label, 1.0))
        y = {
            "study": np.eye(self.classes, dtype=np.float32)[[label]],
            "slices": np.full((1, len(members), 1), float(label > 0), np.float32),
        }
        w = {
            "study": np.array([weight], np.float32),
            "slices": np.full((1, len(members)), weight, np.float32),
        }
        return x[None], y, w


def balanced_class_weight(labels: np.ndarray, *, classes: int) -> dict[int, float]:
    """n / (classes · count) per present class (sklearn's "balanced")."""
    counts = np.bincount(np.asarray(labels, int), minlength=classes)
    total = counts.sum()
    return {c: float(total / (classes * n)) for c, n in enumerate(counts) if n}
