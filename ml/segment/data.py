"""Segmentation data: studies with pixel masks, read through the serving pipeline
(``ml.io.load_study`` -> ``ml.brain.brain_study``) and aligned with their masks.

A mask manifest is a CSV with one row per slice and the columns ``image`` and
``mask`` (paths relative to the CSV's folder) and ``patient`` or ``group``; ct-ich's
own ``labels.csv`` is one. Every slice of a group is one study.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ml.brain import BrainConfig, BrainSlice, brain_study

#: Values of the relative channel are clipped to this range (brain-window units:
#: 1 unit = 120 HU, so blood 20-50 HU above brain is +0.17..+0.42).
RELATIVE_RANGE = (-0.6, 0.6)


def model_input(s: BrainSlice) -> np.ndarray:
    """(S, S, 2) float32 network input of one aligned slice: the slice relative to
    its brain median (the skull and scalp are kept, so a bleed against the bone is
    seen with its context) and the intracranial mask. Nothing absolute is left: a
    scan exported a few HU brighter reads the same."""
    relative = np.clip(s.image - np.float32(s.median or 0.45), *RELATIVE_RANGE)
    return np.stack([relative, s.brain.astype(np.float32)], axis=-1).astype(np.float32)


@dataclass(frozen=True)
class MaskRow:
    """One slice of a mask manifest (paths absolute)."""

    image: Path
    mask: Path
    group: str
    order: int


def read_mask_manifest(path: str | Path) -> list[MaskRow]:
    """The rows of a mask manifest; ValueError naming a missing column or file."""
    path = Path(path)
    if path.is_dir():
        path = path / "labels.csv"
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        group_key = "patient" if "patient" in columns else "group"
        missing = {"image", "mask", group_key} - columns
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        rows = []
        for number, row in enumerate(reader):
            order = int(row["slice"]) if row.get("slice") else number
            rows.append(
                MaskRow(
                    path.parent / row["image"],
                    path.parent / row["mask"],
                    str(row[group_key]),
                    order,
                )
            )
    absent = [str(r.image) for r in rows if not r.image.is_file()][:3]
    if absent:
        raise ValueError(f"images listed in {path} are missing: {', '.join(absent)}")
    return rows


@dataclass
class SegSlices:
    """Aligned slices of many studies, one row per slice.

    ``inputs`` (N, S, S, 2) float16; ``targets`` (N, S, S) uint8, the mask's share
    of each aligned pixel x 255 (soft at the edges); ``groups`` (N,) study names;
    ``order`` (N,) slice index in its study; ``is_brain`` (N,); ``labels`` (N,)
    whether the slice shows a bleed; ``mask_pixels`` (N,) bleed pixels on the
    original slice; ``matrices`` (N, 2, 3) slice -> aligned; ``slice_shape`` (H, W).
    ``original_masks``: {row: (H, W) bool} of the slices that show a bleed.
    """

    inputs: np.ndarray
    targets: np.ndarray
    groups: np.ndarray
    order: np.ndarray
    is_brain: np.ndarray
    labels: np.ndarray
    mask_pixels: np.ndarray
    matrices: np.ndarray
    slice_shape: tuple[int, int]
    original_masks: dict[int, np.ndarray]

    def study_names(self) -> list[str]:
        return sorted(set(self.groups.tolist()))

    def rows_of(self, names: Sequence[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.groups, list(names)))


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot read the mask {path}")
    if mask.shape != shape:
        raise ValueError(f"mask {path} is {mask.shape}, its image {shape}")
    return mask > 127


def load_seg_slices(
    rows: Sequence[MaskRow],
    *,
    brain: BrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> SegSlices:
    """Align every study of ``rows`` and its masks as the Predictor aligns a study."""
    from ml.io import load_study

    by_group: dict[str, list[MaskRow]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    parts: dict[str, list] = {k: [] for k in ("x", "t", "g", "o", "b", "l", "n", "m")}
    originals: dict[int, np.ndarray] = {}
    shape: tuple[int, int] | None = None
    count = 0
    for done, (group, members) in enumerate(sorted(by_group.items()), start=1):
        members = sorted(members, key=lambda r: r.order)
        result = load_study([str(r.image) for r in members])
        by_source = {Path(r.image).name: r for r in members}
        study = brain_study(result.volume, units=result.metadata.units, config=brain)
        for index, (info, s) in enumerate(
            zip(result.slices, study.slices, strict=True)
        ):
            row = _row_of(info.source, members, by_source)
            mask = _read_mask(row.mask, s.slice_shape)
            shape = shape or s.slice_shape
            target = s.from_slice(mask.astype(np.float32), nearest=False)
            parts["x"].append(model_input(s).astype(np.float16))
            parts["t"].append(np.clip(target * 255 + 0.5, 0, 255).astype(np.uint8))
            parts["g"].append(group)
            parts["o"].append(index)
            parts["b"].append(bool(s.is_brain))
            parts["l"].append(bool(mask.any()))
            parts["n"].append(int(mask.sum()))
            parts["m"].append(s.matrix)
            if mask.any():
                originals[count] = mask
            count += 1
        if progress is not None:
            progress(done, len(by_group))
    if shape is None:
        raise ValueError("no slices to load")
    return SegSlices(
        inputs=np.stack(parts["x"]),
        targets=np.stack(parts["t"]),
        groups=np.array(parts["g"]),
        order=np.array(parts["o"]),
        is_brain=np.array(parts["b"]),
        labels=np.array(parts["l"]),
        mask_pixels=np.array(parts["n"]),
        matrices=np.stack(parts["m"]),
        slice_shape=shape,
        original_masks=originals,
    )


def _row_of(source: str, members: Sequence[MaskRow], by_source: dict) -> MaskRow:
    """The manifest row a loaded slice came from (the loader may reorder slices)."""
    for row in members:
        if str(row.image) == source:
            return row
    name = Path(source).name
    if name in by_source:
        return by_source[name]
    raise ValueError(f"slice {source} is not in the manifest")


def cache_key(rows: Sequence[MaskRow], brain: BrainConfig) -> str:
    """A name for the aligned data of ``rows``: their paths and file sizes and the
    brain configuration (changing either makes a new cache)."""
    digest = hashlib.sha256(repr(sorted(brain.to_dict().items())).encode())
    for row in rows:
        for path in (row.image, row.mask):
            digest.update(f"{path}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def cached_seg_slices(
    rows: Sequence[MaskRow],
    *,
    brain: BrainConfig,
    cache_dir: str | Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> SegSlices:
    """:func:`load_seg_slices`, kept in ``cache_dir`` (an .npz per key) when given."""
    if cache_dir is None:
        return load_seg_slices(rows, brain=brain, progress=progress)
    path = Path(cache_dir) / f"seg-{cache_key(rows, brain)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            rows_with = data["original_rows"]
            return SegSlices(
                inputs=data["inputs"],
                targets=data["targets"],
                groups=data["groups"],
                order=data["order"],
                is_brain=data["is_brain"],
                labels=data["labels"],
                mask_pixels=data["mask_pixels"],
                matrices=data["matrices"],
                slice_shape=(int(data["slice_shape"][0]), int(data["slice_shape"][1])),
                original_masks={
                    int(r): np.unpackbits(p)[: int(np.prod(data["slice_shape"]))]
                    .reshape(tuple(data["slice_shape"]))
                    .astype(bool)
                    for r, p in zip(rows_with, data["original_packed"], strict=True)
                },
            )
    loaded = load_seg_slices(rows, brain=brain, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(loaded.original_masks)
    packed = [np.packbits(loaded.original_masks[k].ravel()) for k in keys]
    np.savez_compressed(
        path,
        inputs=loaded.inputs,
        targets=loaded.targets,
        groups=loaded.groups,
        order=loaded.order,
        is_brain=loaded.is_brain,
        labels=loaded.labels,
        mask_pixels=loaded.mask_pixels,
        matrices=loaded.matrices,
        slice_shape=np.array(loaded.slice_shape),
        original_rows=np.array(keys, dtype=np.int64),
        original_packed=np.stack(packed) if packed else np.zeros((0, 1), np.uint8),
    )
    return loaded
