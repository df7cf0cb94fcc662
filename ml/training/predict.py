"""Run a saved model folder over a manifest (for ``python -m ml evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml.datasets import ManifestRow, read_manifest
from ml.modelfile import model_card_load, model_files_verify
from ml.preprocess import PreprocessConfig


def predict_manifest(
    *,
    model_dir: str | Path,
    manifest: str | Path | Sequence[ManifestRow],
    data_root: str | Path,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Calibrated stroke probabilities of every manifest image and study.

    Returns ``y`` (N,) 0/1, ``prob`` (N,) per slice, ``groups`` (N,), ``study_prob``
    (study → probability, aggregated as the model file says), ``threshold`` and
    ``slice_threshold`` from the model file. A stroke-type model also gives
    ``study_types``: study → (true label, predicted stroke type).
    """
    from ml.models import model_load
    from ml.training.config import TrainConfig
    from ml.training.data import slice_cache
    from ml.training.loop import Fitter

    folder = Path(model_dir)
    card = model_card_load(folder)
    model_files_verify(folder, card)
    rows = (
        read_manifest(manifest) if isinstance(manifest, (str, Path)) else list(manifest)
    )
    config = TrainConfig(
        architecture=card.architecture,
        task=card.task,
        preprocessing=PreprocessConfig.from_dict(card.preprocessing),
        aggregation=card.extra.get("aggregation", "topk"),
        top_k=int(card.extra.get("top_k", 5)),
    )
    cache = slice_cache(
        rows=rows, data_root=data_root, config=config.preprocessing, cache_dir=cache_dir
    )
    fitter = Fitter(rows=rows, cache=cache, cfg=config)
    model = model_load(folder / "model.keras")
    pred = fitter.predict(model, list(range(len(rows))))
    if fitter.spec.classical:
        from ml.models.classical import classical_head_load, classical_head_predict

        features = fitter.embeddings(model, pred["indices"])
        head = classical_head_load(folder=folder)
        pred["slices"] = classical_head_predict(head, embeddings=features)
    scores = fitter.positives(pred, card.temperature)
    types = _study_types(pred, scores, fitter, card) if card.task == "type" else {}
    return {
        "study_types": types,
        "y": np.asarray(scores["y"]),
        "prob": np.asarray(scores["slice"]),
        "groups": scores["groups"],
        "study_prob": dict(
            zip(scores["names"], map(float, scores["study"]), strict=True)
        ),
        "threshold": card.threshold,
        "slice_threshold": float(card.extra.get("slice_threshold", card.threshold)),
    }


def _study_types(pred, scores, fitter, card) -> dict[str, tuple[str, str]]:
    """study → (true label, predicted type), chosen as ``ml.inference.Predictor``
    chooses it for one study."""
    from ml.evaluation.calibration import apply_temperature
    from ml.inference.results import study_stroke_type, study_type_probabilities

    rows, classes = fitter.rows, card.classes
    truth = {rows[i].group: classes[int(fitter.labels[i])] for i in pred["indices"]}
    if fitter.spec.study_level:
        probs = apply_temperature(probs=pred["study"], temperature=card.temperature)
        by_study = dict(zip(pred["study_names"], probs, strict=True))
    else:
        probs = apply_temperature(probs=pred["slices"], temperature=card.temperature)
        groups = np.asarray(scores["groups"])
        by_study = {}
        for name in scores["names"]:
            mine = np.flatnonzero(groups == name)
            by_study[name] = study_type_probabilities(
                probs[mine],
                scores["slice"][mine],
                method=fitter.cfg.aggregation,
                k=fitter.cfg.top_k,
            )
    return {
        name: (truth[name], study_stroke_type(p, classes))
        for name, p in by_study.items()
    }
