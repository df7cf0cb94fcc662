"""A whole synthetic data set: balanced labelled studies on disk plus ``labels.csv``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.synthetic.dicom import (
    COMPRESSIONS,
    resolve_syntax,
    series_uids,
    write_dicom_series,
)
from ml.synthetic.images import write_mask, write_png_slices
from ml.synthetic.phantom import LABELS, Phantom, make_phantom

SYNTH_FORMATS: tuple[str, ...] = ("dicom", "png", "both")
MIXED = "mixed"  # cycle uncompressed / RLE / JPEG-LS / JPEG 2000 over studies


@dataclass(frozen=True)
class SynthStudy:
    """One written study of :func:`synthesize_dataset` (a row of ``labels.csv``)."""

    study: str
    label: str
    lesion: str
    scan_number: int
    patient_id: str
    study_uid: str
    seed: int
    compression: str
    path: str  # relative to the data set folder


def _study_plan(studies: int, seed: int) -> list[tuple[str, int]]:
    """Balanced, shuffled labels and an independent seed for each study."""
    rng = np.random.default_rng(seed)
    labels = [LABELS[i % len(LABELS)] for i in range(studies)]
    order = rng.permutation(studies)
    children = np.random.SeedSequence(seed).spawn(studies)
    return [
        (labels[j], int(c.generate_state(1)[0]))
        for j, c in zip(order, children, strict=True)
    ]


def _compression_for(index: int, compression: str) -> str:
    if compression == MIXED:
        return ("none", *COMPRESSIONS)[index % (len(COMPRESSIONS) + 1)]
    resolve_syntax(compression)  # validates
    return compression or "none"


def synthesize_dataset(
    out_dir: str | Path,
    *,
    studies: int,
    seed: int = 0,
    size: int = 256,
    slices: int = 24,
    fmt: str = "dicom",
    compression: str = "none",
    masks: str = "npy",
) -> list[SynthStudy]:
    """Write ``studies`` phantoms to ``out_dir/<label>/<study>/`` plus ``labels.csv``.

    ``fmt``: "dicom", "png" or "both" (then ``dicom/`` and ``png/`` subfolders).
    ``compression``: "none", a ``COMPRESSIONS`` key, or "mixed". ``masks``: "npy",
    "png" or "none". Labels are balanced over normal/ischemic/hemorrhagic and
    shuffled; everything is reproducible from ``seed``.
    """
    if studies < 1:
        raise ValueError(f"studies must be >= 1, got {studies}")
    if fmt not in SYNTH_FORMATS:
        raise ValueError(f"format must be one of {SYNTH_FORMATS}, got {fmt!r}")
    if masks not in ("npy", "png", "none"):
        raise ValueError(f"masks must be 'npy', 'png' or 'none', got {masks!r}")
    root = Path(out_dir)
    records = []
    for i, (label, study_seed) in enumerate(_study_plan(studies, seed)):
        phantom = make_phantom(label=label, size=size, slices=slices, seed=study_seed)
        options = {"fmt": fmt, "masks": masks, "seed": seed}
        compress = _compression_for(i, compression)
        records.append(_write_study(root, phantom, i + 1, compress, options))
    _write_labels_csv(root / "labels.csv", records)
    return records


def _write_study(
    root: Path, phantom: Phantom, number: int, compression: str, options: dict
) -> SynthStudy:
    study = f"study{number:04d}"
    folder = root / phantom.label / study
    patient_id = f"SYN{options['seed']}-{number:04d}"
    uid_seed = f"ml.synthetic/{options['seed']}/{number}"
    if options["fmt"] in ("dicom", "both"):
        target = folder / "dicom" if options["fmt"] == "both" else folder
        syntax = None if compression == "none" else compression
        write_dicom_series(
            phantom,
            target,
            transfer_syntax=syntax,
            patient_id=patient_id,
            uid_seed=uid_seed,
        )
    if options["fmt"] in ("png", "both"):
        target = folder / "png" if options["fmt"] == "both" else folder
        write_png_slices(phantom, target, scan_number=number)
    if options["masks"] != "none":
        write_mask(phantom, folder, fmt=options["masks"], scan_number=number)
    study_uid = series_uids(patient_id=patient_id, uid_seed=uid_seed)["study"]
    return SynthStudy(
        study=study,
        label=phantom.label,
        lesion=phantom.lesion,
        scan_number=number,
        patient_id=patient_id,
        study_uid=study_uid,
        seed=phantom.seed,
        compression=compression,
        path=folder.relative_to(root).as_posix(),
    )


def _write_labels_csv(path: Path, records: list[SynthStudy]) -> None:
    import csv

    names = [f.name for f in dataclasses.fields(SynthStudy)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in records)


def is_synthetic_dataset(folder: str | Path) -> bool:
    """True when ``folder`` holds the ``labels.csv`` that :func:`synthesize_dataset`
    writes: its images are phantoms, and a model trained on them is a demo."""
    path = Path(folder) / "labels.csv"
    try:
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return header == ",".join(f.name for f in dataclasses.fields(SynthStudy))
