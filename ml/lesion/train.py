"""Train the lesion-feature model from a manifest: features of every study through
the serving pipeline (``ml.io.load_study`` -> ``ml.brain.brain_study`` ->
``ml.lesion.features``), a logistic regression on brain slices, temperature and
threshold from out-of-fold predictions, grouped evaluation, and the model folder.

It trains in seconds once the features are computed (about 15 ms a slice).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.brain import BrainConfig, BrainStudy, brain_study
from ml.datasets import ManifestRow
from ml.evaluation.calibration import centred
from ml.lesion.model import (
    ARCHITECTURE,
    LesionModel,
    fit_temperature,
    lesion_fit,
    sigmoid,
    slice_probabilities,
    study_features,
    study_probability,
)

NORMAL_LABELS = ("normal", "0", "no_stroke")
DEFAULT_C = 0.03
#: Of a stroke scan labelled as a whole, the share of its brain slices that train as
#: positives: most slices of a stroke scan show no lesion, so after a first fit only
#: the most suspicious half keeps the scan's label (the rest do not train at all).
DEFAULT_POSITIVE_SHARE = 0.5
REFITS = 2


@dataclass
class StudyFeatures:
    """One study's slice features. ``features`` (D, F) raw; ``is_brain`` (D,) bool;
    ``label`` the study's 0/1; ``slice_labels`` (D,) 0/1 when known per slice (else
    the study label on every slice)."""

    name: str
    label: int
    features: np.ndarray
    is_brain: np.ndarray
    slice_labels: np.ndarray | None = None

    def labels(self) -> np.ndarray:
        if self.slice_labels is not None:
            return np.asarray(self.slice_labels, int)
        return np.full(len(self.features), self.label, int)


def study_from_volume(
    volume: np.ndarray, *, units: str, brain: BrainConfig
) -> tuple[BrainStudy, np.ndarray]:
    """The aligned study and its (D, F) raw features, as the Predictor computes them."""
    study = brain_study(volume, units=units, config=brain)
    return study, study_features(study.slices)


def label_value(label: str) -> int:
    """0 for a normal study's class name, 1 for any stroke or bleed class."""
    return 0 if label.strip().lower() in NORMAL_LABELS else 1


def load_studies(
    rows: Sequence[ManifestRow],
    *,
    data_root: str | Path,
    brain: BrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[StudyFeatures]:
    """Features of every study (manifest group) of ``rows``; the study's label is
    its rows' label (manifests label whole scans)."""
    from ml.io import load_study

    by_group: dict[str, list[ManifestRow]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    out = []
    for done, (group, members) in enumerate(sorted(by_group.items()), start=1):
        paths = [str(Path(data_root) / r.path) for r in members]
        result = load_study(paths)
        study, features = study_from_volume(
            result.volume, units=result.metadata.units, brain=brain
        )
        label = label_value(members[0].label)
        out.append(StudyFeatures(group, label, features, study.is_brain))
        if progress is not None:
            progress(done, len(by_group))
    return out


def _stack(studies: Sequence[StudyFeatures]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([s.features[s.is_brain] for s in studies])
    y = np.concatenate([s.labels()[s.is_brain] for s in studies])
    return x, y


def _folds(studies: Sequence[StudyFeatures], k: int, seed: int) -> list[list[int]]:
    """k lists of study indices, stratified by study label."""
    rng = np.random.default_rng(seed)
    buckets: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for label in (0, 1):
        mine = [i for i, s in enumerate(studies) if s.label == label]
        for i in rng.permutation(mine):
            buckets[dealt % k].append(int(i))
            dealt += 1
    return buckets


@dataclass
class FittedLesionModel:
    """A fitted model with the temperature and study threshold it serves with."""

    model: LesionModel
    temperature: float
    threshold: float
    aggregation: str
    top_k: int

    def score(self, study: StudyFeatures) -> tuple[np.ndarray, float]:
        """(slice probabilities (D,), study probability) of one study."""
        p = slice_probabilities(
            self.model, study.features, study.is_brain, temperature=self.temperature
        )
        return p, study_probability(
            p, study.is_brain, method=self.aggregation, k=self.top_k
        )


def fit_lesion_model(
    studies: Sequence[StudyFeatures],
    *,
    brain: BrainConfig,
    regularisation: float = DEFAULT_C,
    target_sensitivity: float = 0.95,
    aggregation: str = "topk",
    top_k: int = 5,
    seed: int = 0,
    inner_folds: int = 5,
    positive_share: float = DEFAULT_POSITIVE_SHARE,
) -> FittedLesionModel:
    """Fit on the brain slices of ``studies``; temperature (slice level) and the
    study threshold (the highest reaching ``target_sensitivity``) come from
    out-of-fold predictions of an inner grouped CV, so neither is tuned on the
    slices the final weights saw. Stroke scans without slice labels train on
    their most suspicious ``positive_share`` of brain slices (see
    :func:`fit_weights`)."""
    from ml.evaluation.metrics import threshold_for_sensitivity

    fit = functools.partial(
        fit_weights,
        brain=brain,
        regularisation=regularisation,
        positive_share=positive_share,
    )
    studies = [s for s in studies if s.is_brain.any()]
    labels = {s.label for s in studies}
    if labels != {0, 1}:
        raise ValueError("training needs normal and stroke studies with brain slices")
    smallest = min(sum(s.label == c for s in studies) for c in (0, 1))
    k = max(2, min(inner_folds, smallest))
    logits, truths, oof = [], [], []
    for held in _folds(studies, k, seed):
        chosen = set(held)
        train = [s for i, s in enumerate(studies) if i not in chosen]
        model = fit(train)
        for i in held:
            s = studies[i]
            z = model.logits(s.features)
            logits.append(z[s.is_brain])
            truths.append(s.labels()[s.is_brain])
            oof.append((s, z))
    temperature = fit_temperature(np.concatenate(logits), np.concatenate(truths))
    study_p, study_y = [], []
    for s, z in oof:
        p = np.where(s.is_brain, sigmoid(z, temperature=temperature), 0.0)
        study_p.append(study_probability(p, s.is_brain, method=aggregation, k=top_k))
        study_y.append(s.label)
    threshold = threshold_for_sensitivity(
        y_true=study_y, prob=study_p, target=target_sensitivity
    )
    final = fit(studies)
    return FittedLesionModel(final, temperature, threshold, aggregation, top_k)


def fit_weights(
    studies: Sequence[StudyFeatures],
    *,
    brain: BrainConfig,
    regularisation: float,
    positive_share: float = DEFAULT_POSITIVE_SHARE,
) -> LesionModel:
    """The logistic regression on the brain slices of ``studies``.

    A stroke scan labelled as a whole (no ``slice_labels``) says only that some of
    its slices show the lesion: after a first fit on every brain slice, the model
    is refitted ``REFITS`` times with only the ``positive_share`` most suspicious
    brain slices of each such scan as positives (its other slices left out, not
    called normal). Slice-labelled studies and normal scans keep all their slices.
    """
    x, y = _stack(studies)
    model = lesion_fit(features=x, labels=y, brain=brain, regularisation=regularisation)
    weak = any(s.label == 1 and s.slice_labels is None for s in studies)
    if not weak or positive_share >= 1.0:
        return model
    for _ in range(REFITS):
        xs, ys = [], []
        for s in studies:
            features, labels = s.features[s.is_brain], s.labels()[s.is_brain]
            if s.label == 1 and s.slice_labels is None and len(features):
                keep = max(1, int(np.ceil(positive_share * len(features))))
                order = np.argsort(-model.logits(features), kind="stable")[:keep]
                features, labels = features[order], labels[order]
            xs.append(features)
            ys.append(labels)
        model = lesion_fit(
            features=np.concatenate(xs),
            labels=np.concatenate(ys),
            brain=brain,
            regularisation=regularisation,
        )
    return model


def cross_validate(
    studies: Sequence[StudyFeatures], *, k: int, seed: int, **fit: Any
) -> dict[str, Any]:
    """Grouped k-fold by study: out-of-fold slice and study probabilities, each
    centred on its own fold's threshold. Returns the inputs of
    ``ml.evaluation.evaluate_predictions`` (y, prob, groups, study_prob)."""
    pooled: dict[str, Any] = {"y": [], "prob": [], "groups": [], "study_prob": {}}
    for held in _folds(studies, k, seed):
        chosen = set(held)
        fitted = fit_lesion_model(
            [s for i, s in enumerate(studies) if i not in chosen], seed=seed, **fit
        )
        _scored(fitted, [studies[i] for i in held], into=pooled, centre=True)
    return pooled


def lesion_train(
    *,
    rows: Sequence[ManifestRow],
    data_root: str | Path,
    config: Any,
    out_dir: str | Path,
    progress: Callable[[int, int, dict[str, Any]], Any] | None = None,
) -> Any:
    """``ml.training.train_model`` for ``architecture == "lesion_features"``:
    features of every study, grouped CV when ``config.cv`` >= 2 (the report),
    and one model on every study (``out_dir/model``) unless CV runs without
    ``final_fit``. ``config`` is a ``TrainConfig``; its image size is the aligned
    brain's side. Writes ``out_dir/report.json``."""
    from ml.training.config import TrainResult

    if config.task != "binary":
        raise ValueError(
            "the lesion-feature model answers one question (stroke or bleed: yes/no);"
            " train it with task 'binary'"
        )
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    brain = BrainConfig(size=max(64, int(config.preprocessing.size)))
    studies = load_studies(rows, data_root=data_root, brain=brain)
    fit = {
        "brain": brain,
        "target_sensitivity": config.target_sensitivity,
        "aggregation": config.aggregation,
        "top_k": config.top_k,
        "regularisation": float(config.model_options.get("C", DEFAULT_C)),
        "positive_share": float(
            config.model_options.get("positive_share", DEFAULT_POSITIVE_SHARE)
        ),
    }
    report: dict[str, Any] = {}
    train_studies, fitted = studies, None
    if config.cv:
        pooled = cross_validate(studies, k=config.cv, seed=config.seed, **fit)
        report = _report(pooled, config)
    elif config.test_fraction > 0:
        test, train_studies = _test_split(studies, config.test_fraction, config.seed)
        print(f"held out {len(test)} scans as a test split", flush=True)
        fitted = fit_lesion_model(train_studies, seed=config.seed, **fit)
        report = _report(_scored(fitted, test), config, threshold=fitted.threshold)
    if progress is not None:
        progress(1, 1, {"studies": len(studies)})
    model_dir = None
    if config.final_fit or not config.cv:
        if fitted is None:  # the test-split fit already is the final model
            fitted = fit_lesion_model(train_studies, seed=config.seed, **fit)
        model_dir = save_model_folder(
            fitted, rows=rows, config=config, report=report, folder=out / "model"
        )
    seconds = time.perf_counter() - started
    result = TrainResult(
        out_dir=out, model_dir=model_dir, report=report, seconds_per_epoch=seconds
    )
    summary = {"architecture": ARCHITECTURE, "seconds": seconds, "report": report}
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def _test_split(
    studies: Sequence[StudyFeatures], fraction: float, seed: int
) -> tuple[list[StudyFeatures], list[StudyFeatures]]:
    """(test, rest): about ``fraction`` of the studies of each label."""
    held = set(_folds(studies, max(2, round(1 / fraction)), seed)[0])
    test = [s for i, s in enumerate(studies) if i in held]
    return test, [s for i, s in enumerate(studies) if i not in held]


def _scored(
    fitted: FittedLesionModel,
    studies: Sequence[StudyFeatures],
    *,
    into: dict[str, Any] | None = None,
    centre: bool = False,
) -> dict[str, Any]:
    """Add the brain-slice and study probabilities of ``studies`` to ``into`` (the
    inputs of ``evaluate_predictions``); ``centre``: move them so the fold's own
    threshold sits at 0.5, for pooling folds. A study without brain slices is
    skipped: the Predictor refuses it."""
    out = (
        into
        if into is not None
        else {"y": [], "prob": [], "groups": [], "study_prob": {}}
    )
    shift = fitted.threshold if centre else 0.5
    for s in studies:
        if not s.is_brain.any():
            continue
        slice_p, study_p = fitted.score(s)
        count = int(s.is_brain.sum())
        out["y"] += [s.label] * count
        out["prob"] += centred(slice_p[s.is_brain], shift).tolist()
        out["groups"] += [s.name] * count
        out["study_prob"][s.name] = float(centred(np.array([study_p]), shift)[0])
    return out


def _report(
    pooled: dict[str, Any], config: Any, *, threshold: float = 0.5
) -> dict[str, Any]:
    from ml.evaluation import evaluate_predictions

    return evaluate_predictions(
        y_true=pooled["y"],
        prob=pooled["prob"],
        groups=pooled["groups"],
        threshold=threshold,
        study_prob=pooled["study_prob"],
        n_boot=config.n_boot,
        seed=config.seed,
    )


def save_model_folder(
    fitted: FittedLesionModel,
    *,
    rows: Sequence[ManifestRow],
    config: Any,
    report: dict[str, Any],
    folder: Path,
) -> Path:
    """Write ``lesion_model.json`` and ``model.json`` into ``folder``."""
    from ml.lesion.card import lesion_card
    from ml.modelfile import model_card_save

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file():
            stale.unlink()  # a folder holds one model: no weights of another
    fitted.model.save(folder)
    card = lesion_card(fitted, rows=rows, config=config, report=report)
    model_card_save(card, folder)
    return folder
