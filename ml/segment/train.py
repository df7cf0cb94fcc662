"""Train and evaluate the hemorrhage segmentation model.

``seg_train``: grouped k-fold cross-validation by patient (every fold's network
trained from scratch on the other patients, scored on its own), then the final
network on every patient. The slice temperature and the study threshold come from
the out-of-fold scores, so they were never tuned on slices a network saw. Each
epoch draws real bleed slices, normal brain slices with a synthetic bleed pasted
in, and slices without a bleed, all augmented (``ml.segment.synthetic``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ml.brain import BrainConfig
from ml.segment.data import SegSlices, cached_seg_slices, read_mask_manifest
from ml.segment.scores import (
    CONTOUR_LEVEL,
    dice,
    pointing_hit,
    slice_scores,
)
from ml.segment.synthetic import augment, paste_lesion

Log = Callable[[str], None]
#: ct-ich gives no spacing; its volumes are stated with a typical head-CT spacing
#: (a 230 mm field of view on 512 pixels, 5 mm slices). Predicted and true volumes
#: use the same figure, so the error's size scales with it.
STATED_SPACING_MM = (0.45, 0.45, 5.0)


@dataclass
class SegTrainConfig:
    """How a segmentation model is trained; stored in its card."""

    name: str = "ich-seg-ctich"
    version: str = "1"
    size: int = 128
    base_filters: int = 8
    epochs: int = 24
    samples_per_epoch: int = 1200
    batch_size: int = 16
    learning_rate: float = 2e-3
    bleed_share: float = 0.3
    synthetic_share: float = 0.2
    cv: int = 5
    seed: int = 0
    target_sensitivity: float = 0.95
    # The portal's promotion gate (PROMOTION_MIN_SPECIFICITY) refuses a model whose
    # study specificity is below 0.5: below it, false alarms crowd the real bleeds
    # off the top of the worklist. The shipped model is activated without the gate,
    # so its threshold is held to the same floor here (0 = sensitivity alone).
    min_specificity: float = 0.5
    aggregation: str = "max"
    top_k: int = 2
    score_rule: str = "blob"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def epoch_batch(
    data: SegSlices, rows: np.ndarray, cfg: SegTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's (N, S, S, 2) inputs and (N, S, S, 1) targets drawn from ``rows``."""
    bleed = rows[data.labels[rows]]
    normal_brain = rows[data.is_brain[rows] & ~data.labels[rows]]
    negative = rows[~data.labels[rows]]
    n = cfg.samples_per_epoch
    counts = [
        int(n * cfg.bleed_share) if len(bleed) else 0,
        int(n * cfg.synthetic_share) if len(normal_brain) else 0,
    ]
    counts.append(n - sum(counts))
    picks = [
        (rng.choice(pool, size=count), synthetic)
        for pool, count, synthetic in zip(
            (bleed, normal_brain, negative), counts, (False, True, False), strict=True
        )
        if count and len(pool)
    ]
    size = data.inputs.shape[1]
    xs = np.empty((n, size, size, 2), np.float32)
    ys = np.empty((n, size, size, 1), np.float32)
    i = 0
    for chosen, synthetic in picks:
        for row in chosen:
            x = data.inputs[row].astype(np.float32)
            t = data.targets[row].astype(np.float32) / 255.0
            if synthetic:
                for _ in range(1 + int(rng.random() < 0.3)):
                    x, t, _kind = paste_lesion(x, t, rng)
            xs[i], ys[i, ..., 0] = augment(x, t, rng)
            i += 1
    order = rng.permutation(i)
    return xs[order], ys[order]


def fit_network(
    data: SegSlices, rows: np.ndarray, cfg: SegTrainConfig, *, log: Log = print
) -> Any:
    """A U-Net trained from scratch on ``rows`` of ``data``."""
    import keras

    from ml.segment.network import build_unet, dice_bce_loss

    model = build_unet(cfg.size, base=cfg.base_filters, seed=cfg.seed)
    steps = math.ceil(cfg.samples_per_epoch / cfg.batch_size) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=steps, alpha=0.05
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_bce_loss)
    rng = np.random.default_rng(cfg.seed)
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        x, y = epoch_batch(data, rows, cfg, rng)
        history = model.fit(x, y, batch_size=cfg.batch_size, epochs=1, verbose=0)
        log(
            f"  epoch {epoch + 1}/{cfg.epochs}: loss "
            f"{history.history['loss'][-1]:.4f} ({time.perf_counter() - start:.0f} s)"
        )
    return model


def predict_maps(model: Any, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, S, S) float32 pixel probabilities of (N, S, S, 2) inputs (Keras), as
    served: the mean over the slice and its mirror image."""
    from ml.segment.network import mirrored

    def run(x: np.ndarray) -> np.ndarray:
        out = [
            np.asarray(model(x[i : i + batch].astype(np.float32), training=False))
            for i in range(0, len(x), batch)
        ]
        return np.concatenate(out)[..., 0].astype(np.float32)

    return mirrored(run, inputs)


def patient_folds(data: SegSlices, k: int, seed: int) -> list[list[str]]:
    """k lists of study names, stratified by whether the study has a bleed."""
    rng = np.random.default_rng(seed)
    names = data.study_names()
    positive = set(data.groups[data.labels].tolist())
    folds: list[list[str]] = [[] for _ in range(k)]
    for group in (
        [n for n in names if n in positive],
        [n for n in names if n not in positive],
    ):
        shuffled = [group[i] for i in rng.permutation(len(group))]
        for i, name in enumerate(shuffled):
            folds[i % k].append(name)
    return folds


def cross_validate(
    data: SegSlices, cfg: SegTrainConfig, *, log: Log = print
) -> np.ndarray:
    """Out-of-fold (N, S, S) pixel probabilities of every slice."""
    maps = np.zeros(data.targets.shape, np.float32)
    for number, held in enumerate(patient_folds(data, cfg.cv, cfg.seed), start=1):
        test = data.rows_of(held)
        train = np.setdiff1d(np.arange(len(data.groups)), test)
        log(f"fold {number}/{cfg.cv}: {len(held)} patients held out")
        model = fit_network(data, train, cfg, log=log)
        maps[test] = predict_maps(model, data.inputs[test])
    return maps


def original_maps(
    data: SegSlices, maps: np.ndarray, rows: Sequence[int] | np.ndarray
) -> dict[int, np.ndarray]:
    """{row: (H, W) map on the slice as loaded} of aligned maps (serving's warp)."""
    height, width = data.slice_shape
    out = {}
    for row in rows:
        inverse = cv2.invertAffineTransform(data.matrices[row])
        out[int(row)] = cv2.warpAffine(
            maps[row], inverse, (width, height), flags=cv2.INTER_LINEAR
        )
    return out


def fit_slice_temperature(data: SegSlices, raw: np.ndarray) -> float:
    """The slice temperature fitted on the brain slices' raw scores."""
    from ml.lesion.model import fit_temperature

    brain = data.is_brain
    return fit_temperature(_logit(raw[brain]), data.labels[brain].astype(int))


def study_threshold(
    study_y: np.ndarray, study_p: np.ndarray, cfg: SegTrainConfig
) -> float:
    """The study threshold of the card's rule: the highest sensitivity up to
    ``cfg.target_sensitivity`` whose specificity is at least ``cfg.min_specificity``
    on these (out-of-fold) study scores."""
    from ml.evaluation.metrics import threshold_with_specificity_floor

    return threshold_with_specificity_floor(
        y_true=study_y,
        prob=study_p,
        target_sensitivity=cfg.target_sensitivity,
        min_specificity=cfg.min_specificity,
    )


def out_of_fold_scores(
    data: SegSlices, raw: np.ndarray, temperature: float, cfg: SegTrainConfig
) -> dict[str, Any]:
    """Every patient's and every slice's out-of-fold score, by patient name and
    slice position, so that a threshold (or a temperature) can be chosen again
    without training: ``studies`` (patient, fold, label, probability), one record
    each, and ``slices``, one list per column: patient, index (0-based position in
    the study as read, inferior to superior), label, brain slice (only those decide
    a study), raw score and calibrated probability."""
    slice_p = slice_probability(raw, temperature)
    names, study_p, study_y = study_table(data, slice_p, cfg)
    fold_of = {
        name: number
        for number, held in enumerate(patient_folds(data, cfg.cv, cfg.seed), start=1)
        for name in held
    }
    return {
        "temperature": temperature,
        "rule": {
            "target_sensitivity": cfg.target_sensitivity,
            "min_specificity": cfg.min_specificity,
            "aggregation": cfg.aggregation,
            "top_k": cfg.top_k,
            "score_rule": cfg.score_rule,
        },
        "studies": [
            {
                "patient": name,
                "fold": fold_of[name],
                "label": int(label),
                "probability": float(prob),
            }
            for name, label, prob in zip(names, study_y, study_p, strict=True)
        ],
        # One list per column (2,000 slices as records would be 8 lines each).
        "slices": {
            "patient": [str(g) for g in data.groups],
            "index": [int(i) for i in data.order],
            "label": [int(v) for v in data.labels],
            "brain": [bool(v) for v in data.is_brain],
            "raw": [round(float(v), 6) for v in raw],
            "probability": [round(float(v), 6) for v in slice_p],
        },
    }


def operating_point(report: dict[str, Any], cfg: SegTrainConfig) -> dict[str, Any]:
    """The study sensitivity and specificity expected at the stored threshold (the
    out-of-fold figures, with their patient-bootstrap CIs) and the rule that chose
    it."""
    study = report["study"]
    return {
        "threshold": study["threshold"],
        "sensitivity": study["sensitivity"],
        "specificity": study["specificity"],
        "ci95": {k: study["ci95"][k] for k in ("sensitivity", "specificity")},
        "confusion_matrix": study["confusion_matrix"],
        "rule": (
            f"the highest out-of-fold study sensitivity up to "
            f"{cfg.target_sensitivity:g} whose specificity is at least "
            f"{cfg.min_specificity:g}"
        ),
        "target_sensitivity": cfg.target_sensitivity,
        "min_specificity": cfg.min_specificity,
    }


def slice_probability(raw: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated slice probabilities of raw slice scores."""
    from ml.lesion.model import sigmoid

    return sigmoid(_logit(raw), temperature=temperature).astype(np.float32)


def study_table(
    data: SegSlices, slice_p: np.ndarray, cfg: SegTrainConfig
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, study probabilities, study labels), each study's probability from
    its brain slices by the card's rule."""
    from ml.lesion.model import study_probability

    names = data.study_names()
    probs, labels = [], []
    for name in names:
        rows = data.rows_of([name])
        brain = data.is_brain[rows]
        try:
            p = study_probability(
                slice_p[rows], brain, method=cfg.aggregation, k=cfg.top_k
            )
        except ValueError:  # no brain slice: the portal says "outside"
            p = 0.0
        probs.append(p)
        labels.append(int(data.labels[rows].any()))
    return names, np.array(probs), np.array(labels)


def localisation(data: SegSlices, maps: np.ndarray) -> dict[str, Any]:
    """Dice, pointing game and volume of the maps against the masks, on the slice
    as loaded (512 px for ct-ich)."""
    bleed_rows = sorted(data.original_masks)
    on_slice = original_maps(data, maps, bleed_rows)
    dices = [
        dice(on_slice[r] >= CONTOUR_LEVEL, data.original_masks[r]) for r in bleed_rows
    ]
    hits = [pointing_hit(on_slice[r], data.original_masks[r]) for r in bleed_rows]
    px_ml = STATED_SPACING_MM[0] * STATED_SPACING_MM[1] * STATED_SPACING_MM[2] / 1000
    predicted: dict[str, float] = {}
    all_maps = original_maps(data, maps, np.flatnonzero(data.is_brain))
    for row, m in all_maps.items():
        g = str(data.groups[row])
        predicted[g] = predicted.get(g, 0.0) + float((m >= CONTOUR_LEVEL).sum()) * px_ml
    errors, rows_out = [], []
    for name in data.study_names():
        rows = data.rows_of([name])
        truth = float(data.mask_pixels[rows][data.is_brain[rows]].sum()) * px_ml
        if data.labels[rows].any():
            errors.append(abs(predicted.get(name, 0.0) - truth))
            rows_out.append(
                {
                    "patient": name,
                    "true_ml": truth,
                    "predicted_ml": predicted.get(name, 0.0),
                }
            )
    return {
        "dice_mean": float(np.mean(dices)),
        "dice_median": float(np.median(dices)),
        "dice_slices": len(dices),
        "pointing": float(np.mean(hits)),
        "volume_abs_error_ml_median": float(np.median(errors)),
        "volume_abs_error_ml_mean": float(np.mean(errors)),
        "volumes": rows_out,
        "stated_spacing_mm": list(STATED_SPACING_MM),
    }


def evaluate_maps(
    data: SegSlices,
    maps: np.ndarray,
    cfg: SegTrainConfig,
    *,
    temperature: float,
    threshold: float,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """The report of out-of-fold (or test) maps: slice and study metrics with
    study-bootstrap CIs, and localisation."""
    from ml.evaluation import evaluate_predictions
    from ml.evaluation.metrics import roc_auc
    from ml.evaluation.report import _section

    raw = slice_scores(maps, data.inputs[..., 1] > 0.5, rule=cfg.score_rule)
    slice_p = slice_probability(raw, temperature)
    names, study_p, study_y = study_table(data, slice_p, cfg)
    served = np.where(data.is_brain, slice_p, 0.0)
    study_label = dict(zip(names, study_y.tolist(), strict=True))
    report = evaluate_predictions(
        y_true=[study_label[g] for g in data.groups.tolist()],
        prob=served,
        groups=data.groups.tolist(),
        threshold=threshold,
        study_prob=dict(zip(names, study_p.tolist(), strict=True)),
        n_boot=n_boot,
        seed=cfg.seed,
    )
    # Slices are judged against their own masks' labels (ct-ich labels slices),
    # with CIs resampled by patient; the served score (0 off brain slices).
    report["slice"] = _section(
        data.labels.astype(int),
        served,
        data.groups.tolist(),
        threshold,
        n_boot,
        cfg.seed,
    )
    report["slice_auc_all_slices"] = roc_auc(
        y_true=data.labels.astype(int), prob=slice_p
    )
    report["localisation"] = localisation(data, maps)
    return report


def _compare_rules(data: SegSlices, maps: np.ndarray, cfg: SegTrainConfig) -> dict:
    """Patient and slice AUC of every score rule on the same out-of-fold maps (the
    card's rule is chosen before training; this says what the others would do)."""
    from dataclasses import replace

    from ml.evaluation.metrics import roc_auc
    from ml.segment.scores import SCORE_RULES

    out = {}
    for rule in SCORE_RULES:
        raw = slice_scores(maps, data.inputs[..., 1] > 0.5, rule=rule)
        _, study_p, study_y = study_table(data, raw, replace(cfg, score_rule=rule))
        out[rule] = {
            "patient_auc": roc_auc(y_true=study_y, prob=study_p),
            "slice_auc": roc_auc(
                y_true=data.labels[data.is_brain].astype(int), prob=raw[data.is_brain]
            ),
        }
    return out


def seg_train(
    *,
    data_dir: str | Path,
    out_dir: str | Path | None,
    cfg: SegTrainConfig,
    cache_dir: str | Path | None = None,
    report_path: str | Path | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Cross-validate (``cfg.cv`` >= 2), then train the final model on everything
    and write its folder to ``out_dir`` (skipped when None). Returns the report."""
    started = time.perf_counter()
    rows = read_mask_manifest(data_dir)
    brain = BrainConfig(size=cfg.size)
    data = cached_seg_slices(rows, brain=brain, cache_dir=cache_dir)
    log(f"{len(data.groups)} slices of {len(data.study_names())} studies aligned")
    report: dict[str, Any] = {"config": cfg.to_dict()}
    if cfg.cv >= 2:
        maps = cross_validate(data, cfg, log=log)
        if cache_dir is not None:  # out-of-fold maps, to study them afterwards
            np.save(Path(cache_dir) / "seg-oof-maps.npy", maps.astype(np.float16))
        report["score_rules"] = _compare_rules(data, maps, cfg)
        raw = slice_scores(maps, data.inputs[..., 1] > 0.5, rule=cfg.score_rule)
        temperature = fit_slice_temperature(data, raw)
        oof = out_of_fold_scores(data, raw, temperature, cfg)
        report["out_of_fold"] = oof
        report["cv_seconds"] = time.perf_counter() - started
        threshold = _threshold_or_fail(oof, cfg, report, report_path)
        report["cv"] = evaluate_maps(
            data, maps, cfg, temperature=temperature, threshold=threshold
        )
        report["cv"]["operating_point"] = operating_point(report["cv"], cfg)
    else:
        temperature, threshold = 1.0, 0.5
    report["temperature"], report["threshold"] = temperature, threshold
    if report_path is not None:
        _write_json(report_path, report)
    if out_dir is not None:
        final_start = time.perf_counter()
        log("final model on every patient")
        model = fit_network(data, np.arange(len(data.groups)), cfg, log=log)
        report["final_seconds"] = time.perf_counter() - final_start
        from ml.segment.card import save_seg_model

        save_seg_model(
            model,
            folder=Path(out_dir),
            cfg=cfg,
            rows=rows,
            report=report,
            temperature=temperature,
            threshold=threshold,
        )
        if report_path is not None:
            _write_json(report_path, report)
    return report


def _threshold_or_fail(
    oof: dict[str, Any],
    cfg: SegTrainConfig,
    report: dict[str, Any],
    report_path: str | Path | None,
) -> float:
    """The study threshold of the out-of-fold scores; when none meets the floor,
    the report (with those scores) is written and a ValueError says so, before
    the final network is trained."""
    study_y = np.array([s["label"] for s in oof["studies"]])
    study_p = np.array([s["probability"] for s in oof["studies"]])
    try:
        return study_threshold(study_y, study_p, cfg)
    except ValueError as exc:
        where = "not written (no --report)"
        if report_path is not None:
            report["error"] = str(exc)
            _write_json(report_path, report)
            where = f"in {report_path}"
        raise ValueError(
            f"the out-of-fold study scores allow no threshold with specificity "
            f">= {cfg.min_specificity:g} ({exc}); no model was written. The "
            f"scores are {where}: choose another --min-specificity, or a better "
            "model."
        ) from exc


def _write_json(path: str | Path, report: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2, default=float))
