"""Fit one model on one split: compile, stream batches, monitor validation AUC with
early stopping and best-weights restore, then calibrate and pick the threshold on
the validation part and evaluate on the held-out part."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from ml.datasets import ManifestRow
from ml.evaluation import (
    aggregate_by_group,
    apply_temperature,
    centred,
    evaluate_predictions,
    fit_temperature,
    group_labels,
    logits_from_probs,
    roc_auc,
    threshold_for_sensitivity,
)
from ml.modelfile import TASK_CLASSES
from ml.models import architecture_spec, build_model, embedding_layer
from ml.training.config import ProgressCallback, TrainConfig
from ml.training.data import (
    SliceBatches,
    StudyBatches,
    balanced_class_weight,
    study_members,
)


@dataclass
class FitOutcome:
    """One fitted model with its calibration, thresholds and held-out results."""

    model: keras.Model
    classifier: Any
    temperature: float
    threshold: float
    slice_threshold: float
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    cancelled: bool = False
    report: dict[str, Any] | None = None
    held_out: dict[str, Any] | None = None  # y, centred slice/study probs, groups


def positive(probs: np.ndarray) -> np.ndarray:
    """Stroke probability from (N, K) class probabilities: 1 - p(normal)."""
    return 1.0 - np.asarray(probs, np.float64)[:, 0]


class EpochMonitor(keras.callbacks.Callback):
    """Validation AUC after every epoch, one progress line, early stopping on it
    with the best weights restored, and the caller's ``progress`` hook (returning
    False cancels)."""

    def __init__(self, *, evaluate: Any, cfg: TrainConfig, label: str, progress: Any):
        super().__init__()
        self.evaluate, self.cfg, self.label, self.progress = (
            evaluate,
            cfg,
            label,
            progress,
        )
        self.best, self.best_weights, self.wait = -math.inf, None, 0
        self.history: list[dict[str, Any]] = []
        self.seconds: list[float] = []
        self.cancelled = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.started
        self.seconds.append(seconds)
        entry = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", math.nan))}
        entry.update(self.evaluate())
        entry["seconds"] = round(seconds, 2)
        self.history.append(entry)
        print(
            f"{self.label}epoch {epoch + 1}/{self.cfg.epochs} loss {entry['loss']:.4f} "
            f"val_auc {entry['val_auc']:.3f} (study {entry['val_study_auc']:.3f}) "
            f"{seconds:.1f} s",
            flush=True,
        )
        score = entry["val_auc"] if not math.isnan(entry["val_auc"]) else -1.0
        if score >= self.best:  # ties go to the later, longer-trained epoch
            self.best, self.wait = score, 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.cfg.patience:
                self.model.stop_training = True
        if (
            self.progress is not None
            and self.progress(epoch + 1, self.cfg.epochs, dict(entry)) is False
        ):
            self.cancelled = True
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class Fitter:
    """Fits ``cfg.architecture`` on rows of a manifest whose images are cached."""

    def __init__(
        self, *, rows: Sequence[ManifestRow], cache: np.ndarray, cfg: TrainConfig
    ) -> None:
        from ml.training.data import label_index

        self.rows, self.cache, self.cfg = rows, cache, cfg
        self.spec = architecture_spec(cfg.architecture)
        self.classes = len(TASK_CLASSES[cfg.task])
        self.labels = np.array([label_index(r.label, task=cfg.task) for r in rows])
        self.groups = [r.group for r in rows]

    # --- prediction --------------------------------------------------------------

    def predict(self, model: keras.Model, indices: Sequence[int]) -> dict[str, Any]:
        """Class probabilities per slice (N, K), and per study for study models,
        in the order of ``indices`` / sorted study names."""
        if self.spec.study_level:
            return self._predict_studies(model, indices)
        batches = SliceBatches(
            cache=self.cache,
            indices=indices,
            labels=self.labels,
            classes=self.classes,
            batch_size=64,
        )
        order = np.sort(np.asarray(indices, int))
        probs = model.predict(batches, verbose=0)
        back = np.searchsorted(order, np.asarray(indices, int))
        return {"slices": probs[back], "indices": list(indices)}

    def _predict_studies(self, model: keras.Model, indices: Sequence[int]) -> dict:
        members = study_members(self.rows, indices)
        study_probs, slice_probs, flat = [], [], []
        for study in members:
            x = np.asarray(self.cache[study], np.float32)[None]
            out = model.predict_on_batch(x)
            study_probs.append(np.asarray(out["study"])[0])
            slice_probs.append(np.asarray(out["slices"])[0, :, 0])
            flat += study
        return {
            "study": np.array(study_probs),
            "slice_positive": np.concatenate(slice_probs),
            "indices": flat,
            "study_names": sorted({self.rows[i].group for i in indices}),
        }

    def positives(self, pred: dict[str, Any], temperature: float) -> dict[str, Any]:
        """Calibrated stroke probabilities per slice and per study."""
        idx = pred["indices"]
        groups = [self.groups[i] for i in idx]
        if self.spec.study_level:
            study = positive(
                apply_temperature(probs=pred["study"], temperature=temperature)
            )
            slice_p = np.asarray(pred["slice_positive"], np.float64)
            names = pred["study_names"]
        else:
            slice_p = positive(
                apply_temperature(probs=pred["slices"], temperature=temperature)
            )
            names, study = aggregate_by_group(
                prob=slice_p,
                groups=groups,
                method=self.cfg.aggregation,
                k=self.cfg.top_k,
            )
        y = (self.labels[idx] > 0).astype(int)
        return {
            "y": y,
            "slice": slice_p,
            "groups": groups,
            "names": names,
            "study": study,
        }

    def _val_scores(self, model: keras.Model, val_idx: Sequence[int]) -> dict:
        scores = self.positives(self.predict(model, val_idx), 1.0)
        _, study_y = group_labels(y_true=scores["y"], groups=scores["groups"])
        slice_auc = roc_auc(y_true=scores["y"], prob=scores["slice"])
        study_auc = roc_auc(y_true=study_y, prob=scores["study"])
        main = study_auc if self.spec.study_level else slice_auc
        return {"val_auc": main, "val_slice_auc": slice_auc, "val_study_auc": study_auc}

    # --- fitting -----------------------------------------------------------------

    def _compile(self, model: keras.Model, steps: int) -> None:
        cfg = self.cfg
        lr: Any = cfg.learning_rate
        if cfg.lr_schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(
                cfg.learning_rate, decay_steps=max(1, steps * cfg.epochs), alpha=0.05
            )
        optimizer = keras.optimizers.Adam(learning_rate=lr)
        if self.spec.study_level:
            model.compile(
                optimizer=optimizer,
                loss={
                    "study": "categorical_crossentropy",
                    "slices": "binary_crossentropy",
                },
                loss_weights={"study": 1.0, "slices": 0.3},
            )
        else:
            model.compile(optimizer=optimizer, loss="categorical_crossentropy")

    def _train_batches(self, train_idx: Sequence[int], class_weight: dict) -> Any:
        cfg = self.cfg
        common: dict[str, Any] = {
            "cache": self.cache,
            "labels": self.labels,
            "classes": self.classes,
            "class_weight": class_weight,
            "augment_config": cfg.augment,
            "shuffle": True,
            "seed": cfg.seed,
        }
        if self.spec.study_level:
            return StudyBatches(
                studies=study_members(self.rows, train_idx),
                max_slices=cfg.max_slices,
                **common,
            )
        return SliceBatches(
            indices=train_idx,
            batch_size=cfg.batch_size,
            fraction=cfg.steps_fraction,
            **common,
        )

    def input_shape(self) -> tuple:
        p = self.cfg.preprocessing
        shape = (p.size, p.size, p.channels)
        return (None, *shape) if self.spec.study_level else shape

    def fit(
        self,
        *,
        train_idx: Sequence[int],
        val_idx: Sequence[int],
        test_idx: Sequence[int] = (),
        progress: ProgressCallback | None = None,
        label: str = "",
    ) -> FitOutcome:
        """Train on ``train_idx``, stop early and calibrate on ``val_idx``, report on
        ``test_idx`` (if any). Returns a :class:`FitOutcome`."""
        cfg = self.cfg
        keras.backend.clear_session()
        keras.utils.set_random_seed(cfg.seed)
        model = build_model(
            cfg.architecture,
            input_shape=self.input_shape(),
            task=cfg.task,
            weights_path=cfg.weights_path,
            **cfg.model_options,
        )
        weights = (
            balanced_class_weight(self.labels[list(train_idx)], classes=self.classes)
            if cfg.class_weights
            else None
        )
        batches = self._train_batches(train_idx, weights or {})
        self._compile(model, len(batches))
        monitor = EpochMonitor(
            evaluate=lambda: self._val_scores(model, val_idx),
            cfg=cfg,
            label=label,
            progress=progress,
        )
        callbacks: list[Any] = [monitor]
        if cfg.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="loss", factor=0.5, patience=2
                )
            )
        model.fit(batches, epochs=cfg.epochs, callbacks=callbacks, verbose=0)
        outcome = FitOutcome(
            model, None, 1.0, 0.5, 0.5, monitor.history, monitor.seconds
        )
        outcome.cancelled = monitor.cancelled
        if outcome.cancelled:
            return outcome
        self._classical_head(outcome, train_idx)
        self._calibrate(outcome, val_idx)
        if test_idx:
            self._report(outcome, test_idx)
        return outcome

    # --- after fitting -------------------------------------------------------------

    def _classical_head(self, outcome: FitOutcome, train_idx: Sequence[int]) -> None:
        if not self.spec.classical:
            return
        from ml.models.classical import classical_head_fit

        features = self.embeddings(outcome.model, train_idx)
        outcome.classifier = classical_head_fit(
            kind=self.spec.classical,
            embeddings=features,
            labels=self.labels[list(train_idx)],
            seed=self.cfg.seed,
        )

    def embeddings(self, model: keras.Model, indices: Sequence[int]) -> np.ndarray:
        """(N, F) ``embedding`` features of slices, in the order of ``indices``."""
        layer = model.get_layer(embedding_layer(self.cfg.architecture))
        extractor = keras.Model(model.inputs, layer.output)
        return self.predict(extractor, indices)["slices"]

    def _probs(self, outcome: FitOutcome, indices: Sequence[int]) -> dict[str, Any]:
        pred = self.predict(outcome.model, indices)
        if outcome.classifier is not None:
            from ml.models.classical import classical_head_predict

            features = self.embeddings(outcome.model, indices)
            pred["slices"] = classical_head_predict(
                outcome.classifier, embeddings=features
            )
        return pred

    def _calibrate(self, outcome: FitOutcome, val_idx: Sequence[int]) -> None:
        pred = self._probs(outcome, val_idx)
        if self.spec.study_level:
            names = pred["study_names"]
            first = {self.rows[i].group: self.labels[i] for i in val_idx}
            logits, labels = logits_from_probs(pred["study"]), [first[n] for n in names]
        else:
            logits = logits_from_probs(pred["slices"])
            labels = self.labels[pred["indices"]]
        outcome.temperature = fit_temperature(logits=logits, labels=labels)
        scores = self.positives(pred, outcome.temperature)
        _, study_y = group_labels(y_true=scores["y"], groups=scores["groups"])
        target = self.cfg.target_sensitivity
        outcome.threshold = threshold_for_sensitivity(
            y_true=study_y, prob=scores["study"], target=target
        )
        outcome.slice_threshold = threshold_for_sensitivity(
            y_true=scores["y"], prob=scores["slice"], target=target
        )

    def _report(self, outcome: FitOutcome, test_idx: Sequence[int]) -> None:
        scores = self.positives(self._probs(outcome, test_idx), outcome.temperature)
        study_prob = dict(zip(scores["names"], scores["study"], strict=True))
        outcome.report = evaluate_predictions(
            y_true=scores["y"],
            prob=scores["slice"],
            groups=scores["groups"],
            threshold=outcome.threshold,
            slice_threshold=outcome.slice_threshold,
            study_prob=study_prob,
            n_boot=self.cfg.n_boot,
            seed=self.cfg.seed,
        )
        outcome.held_out = {
            "y": scores["y"].tolist(),
            "groups": scores["groups"],
            "slice": centred(scores["slice"], outcome.slice_threshold).tolist(),
            "study": {
                n: float(centred(np.array([p]), outcome.threshold)[0])
                for n, p in study_prob.items()
            },
        }
