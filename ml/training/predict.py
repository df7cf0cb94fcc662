"""Run a saved model over a manifest, study by study, through the serving
:class:`ml.inference.Predictor` (for ``python -m ml evaluate`` and the portal's
locked-split evaluation).

Each manifest ``group`` is one study: its files are read together with
``ml.io.load_study`` and predicted as an upload of those files would be, so the
figures an evaluation reports are the figures the portal would show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.datasets import ManifestRow, read_manifest

if TYPE_CHECKING:
    from ml.inference import Predictor, StudyPrediction
    from ml.io import LoadResult

#: ``progress(studies done, studies in all)``, called after every study.
StudyProgress = Callable[[int, int], None]


def predict_manifest(
    *,
    model_dir: str | Path,
    manifest: str | Path | Sequence[ManifestRow],
    data_root: str | Path,
    cache_dir: str | Path | None = None,
    progress: StudyProgress | None = None,
) -> dict[str, Any]:
    """Load the model folder as the portal does and predict every manifest study.

    ``manifest``: a CSV path or rows whose paths are relative to ``data_root``.
    ``cache_dir`` is accepted for callers of the former slice-cache path and unused:
    studies are read from their files, as uploads are. Returns what
    :func:`predict_studies` returns.
    """
    from ml.inference import Predictor

    rows = (
        read_manifest(manifest) if isinstance(manifest, (str, Path)) else list(manifest)
    )
    predictor = Predictor.load(model_dir)
    return predict_studies(
        predictor=predictor, rows=rows, data_root=data_root, progress=progress
    )


def predict_studies(
    *,
    predictor: Predictor,
    rows: Sequence[ManifestRow],
    data_root: str | Path,
    progress: StudyProgress | None = None,
) -> dict[str, Any]:
    """Predict each study (manifest ``group``) with ``predictor.predict``.

    Returns ``y`` (N,) 0/1 and ``prob`` (N,) calibrated stroke probabilities of the
    N slices the predictor saw (``StudyPrediction.slice_probabilities``, studies in
    sorted order, slices in volume order), ``groups`` (N,) their study names,
    ``study_prob`` study → ``study_probability``, the model file's ``threshold``
    (on the study probability) and ``slice_threshold``, ``study_types`` study →
    (true label, likelier stroke type) for stroke-type models (else {}),
    ``set_aside`` [(manifest path, reason)] of files ``load_study`` did not use
    (other series of a DICOM study), and ``backend``. A study of images that
    loses a file (sizes that differ, an unreadable file) is a ValueError naming it.
    """
    if not rows:
        raise ValueError("the manifest has no rows")
    card = predictor.card
    studies = _rows_by_study(rows)
    out = _empty_result(predictor)
    for done, (name, members) in enumerate(studies.items(), start=1):
        loaded = load_group(name=name, rows=members, data_root=data_root)
        truth = _study_label(name, members, card.classes, task=card.task)
        prediction = predictor.predict(loaded)
        _add_study(out, name=name, truth=truth, prediction=prediction, card=card)
        out["set_aside"] += [(r.name, r.reason) for r in loaded.rejected]
        if progress is not None:
            progress(done, len(studies))
    out["y"], out["prob"] = np.asarray(out["y"]), np.asarray(out["prob"])
    return out


def _empty_result(predictor: Predictor) -> dict[str, Any]:
    card = predictor.card
    return {
        "y": [],
        "prob": [],
        "groups": [],
        "study_prob": {},
        "study_types": {},
        "set_aside": [],
        "threshold": float(card.threshold),
        "slice_threshold": float(card.extra.get("slice_threshold", card.threshold)),
        "backend": predictor.backend,
    }


def _add_study(
    out: dict[str, Any],
    *,
    name: str,
    truth: str,
    prediction: StudyPrediction,
    card: Any,
) -> None:
    depth = len(prediction.slice_probabilities)
    out["y"] += [int(truth != "normal")] * depth
    out["prob"] += [float(p) for p in prediction.slice_probabilities]
    out["groups"] += [name] * depth
    out["study_prob"][name] = float(prediction.study_probability)
    if prediction.type_probabilities is not None:
        from ml.inference.results import study_stroke_type

        type_p = [prediction.type_probabilities[c] for c in card.classes]
        # The likelier stroke type whether or not the study was called a stroke:
        # type accuracy is judged on every stroke study.
        out["study_types"][name] = (truth, study_stroke_type(type_p, card.classes))


def _rows_by_study(rows: Sequence[ManifestRow]) -> dict[str, list[ManifestRow]]:
    """group → its rows, groups sorted (the order of ``aggregate_by_group``)."""
    members: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        members[row.group].append(row)
    return {name: members[name] for name in sorted(members)}


def _study_label(
    name: str, members: Sequence[ManifestRow], classes: Sequence[str], *, task: str
) -> str:
    labels = sorted({r.label for r in members})
    if len(labels) != 1:
        raise ValueError(f"group {name!r} has images with different labels {labels}")
    if task != "binary" and labels[0] not in classes:
        raise ValueError(
            f"group {name!r} is labelled {labels[0]!r}, not one of the model's "
            f"classes {list(classes)}"
        )
    return labels[0]


def load_group(
    *, name: str, rows: Sequence[ManifestRow], data_root: str | Path
) -> LoadResult:
    """Read the files of one study (manifest group) with ``ml.io.load_study``.

    Image slices are ordered by the last number of their file name, as an upload
    of them would be (``ml.io.slice_order_key``; training orders study members the
    same way). Files set aside are named by their manifest path. Raises ValueError
    naming the group when a file is missing, nothing can be read, or a study of
    images loses a file: ``load_study`` keeps the majority size of a study's
    images, so a group whose images differ in size is not one scan (check the
    group rule, ``--group-regex``).
    """
    from ml.io import StudyLoadError, load_study

    root = Path(data_root)
    paths = [root / r.path for r in rows]
    missing = [r.path for r, p in zip(rows, paths, strict=True) if not p.is_file()]
    if missing:
        raise ValueError(f"group {name!r}: {len(missing)} missing, e.g. {missing[0]}")
    names = {str(p): r.path for r, p in zip(rows, paths, strict=True)}
    try:
        loaded = load_study(paths, names=names)
    except StudyLoadError as exc:
        raise ValueError(f"group {name!r} cannot be read: {exc}") from exc
    if loaded.rejected and loaded.metadata.source_kind == "image":
        first = loaded.rejected[0]
        raise ValueError(
            f"group {name!r} is not one readable scan: {first.name}: {first.reason} "
            f"({len(loaded.rejected)} of its {len(rows)} images set aside). Each "
            "group is read as one study; check the group rule (--group-regex)."
        )
    return loaded
