"""``train_model``: splits, cross-validation, the final model and its folder."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.datasets import (
    ManifestRow,
    grouped_kfold,
    grouped_train_val_test,
    read_manifest,
)
from ml.evaluation import evaluate_predictions, report_compact
from ml.modelfile import TASK_CLASSES, ModelCard, model_card_save
from ml.provenance import code_version, training_fingerprint
from ml.training.config import ProgressCallback, TrainConfig, TrainResult
from ml.training.data import slice_cache
from ml.training.loop import FitOutcome, Fitter


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _split_rows(rows: Sequence[ManifestRow], mode: str) -> list[ManifestRow]:
    # A random slice split: every image is its own split group (leaks on purpose).
    if mode == "random_slice":
        return [replace(r, split_group=r.path) for r in rows]
    return list(rows)


def _inner_split(
    rows: Sequence[ManifestRow], indices: Sequence[int], cfg: TrainConfig
) -> tuple[list[int], list[int]]:
    """Training part → (fit, validation) by split group."""
    subset = [rows[i] for i in indices]
    split = grouped_train_val_test(
        subset, fractions=(1 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=cfg.seed
    )
    return [indices[i] for i in split.train], [indices[i] for i in split.val]


def _pooled_report(outcomes: Sequence[FitOutcome], cfg: TrainConfig) -> dict:
    """Out-of-fold predictions of all folds, each centred on its fold's thresholds,
    judged at 0.5 with bootstrap CIs over studies."""
    y: list[int] = []
    p: list[float] = []
    groups: list[str] = []
    study: dict[str, float] = {}
    for outcome in outcomes:
        held = outcome.held_out or {}
        y += held["y"]
        p += held["slice"]
        groups += held["groups"]
        study.update(held["study"])
    # random_slice: studies straddle folds, so aggregate their pooled slices.
    study_prob = None if cfg.split_mode == "random_slice" else study
    return evaluate_predictions(
        y_true=np.array(y),
        prob=np.array(p),
        groups=groups,
        threshold=0.5,
        study_prob=study_prob,
        aggregation=cfg.aggregation,
        top_k=cfg.top_k,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )


def _save(
    outcome: FitOutcome,
    *,
    fitter: Fitter,
    rows: Sequence[ManifestRow],
    cfg: TrainConfig,
    metrics: dict[str, Any],
    folder: Path,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    outcome.model.save(folder / "model.keras")
    if outcome.classifier is not None:
        from ml.models.classical import classical_head_save

        classical_head_save(outcome.classifier, folder=folder)
    counts = {
        label: sum(r.label == label for r in rows)
        for label in sorted({r.label for r in rows})
    }
    card = ModelCard(
        name=cfg.name or f"{cfg.architecture}-{cfg.task}",
        version=cfg.version,
        architecture=cfg.architecture,
        task=cfg.task,
        classes=list(TASK_CLASSES[cfg.task]),
        modality="CT",
        input_shape=list(fitter.input_shape()),
        preprocessing=cfg.preprocessing.to_dict(),
        threshold=outcome.threshold,
        temperature=outcome.temperature,
        study_level=fitter.spec.study_level,
        metrics=metrics,
        training_data={
            "fingerprint": training_fingerprint(rows),
            "images": len(rows),
            "groups": len({r.group for r in rows}),
            "labels": counts,
        },
        code_version=code_version(),
        description=f"{cfg.architecture} trained from scratch on {len(rows)} images",
        extra={
            "slice_threshold": outcome.slice_threshold,
            "aggregation": cfg.aggregation,
            "top_k": cfg.top_k,
            "target_sensitivity": cfg.target_sensitivity,
            "train_config": cfg.to_dict(),
            "history": outcome.history,
        },
    )
    model_card_save(card, folder)
    return folder


def train_model(
    *,
    manifest: str | Path | Sequence[ManifestRow],
    data_root: str | Path,
    config: TrainConfig,
    out_dir: str | Path,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train ``config.architecture`` on a manifest (CSV path or rows) whose paths are
    relative to ``data_root``; write ``out_dir/report.json`` and, unless CV runs
    without ``final_fit``, the model folder ``out_dir/model`` (model.keras,
    model.json, and model.onnx when the ONNX export matches Keras).

    ``config.cv == 0`` fits one model on a grouped train/validation/test split;
    with ``config.test_fraction == 0`` there is no test split (every scan but the
    validation part is trained on) and the report is empty.
    ``progress(epoch, total, logs)`` is called after every epoch; returning False
    cancels (``TrainResult.cancelled``, no model saved).
    """
    rows = (
        read_manifest(manifest) if isinstance(manifest, (str, Path)) else list(manifest)
    )
    if not rows:
        raise ValueError("the manifest has no rows")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cache = slice_cache(
        rows=rows,
        data_root=data_root,
        config=config.preprocessing,
        cache_dir=config.cache_dir,
    )
    print(
        f"cache ready: {cache.shape} in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    fitter = Fitter(rows=rows, cache=cache, cfg=config)
    split_rows = _split_rows(rows, config.split_mode)
    outcomes, final = _cross_validate(fitter, split_rows, config, progress)
    if any(o.cancelled for o in outcomes):
        return _result(out, None, {}, outcomes, cancelled=True)
    if config.cv:
        report = _pooled_report(outcomes, config)
        if config.final_fit:
            final = _final_fit(fitter, split_rows, config, progress)
            if final.cancelled:
                return _result(out, None, report, outcomes, cancelled=True)
    else:
        report = outcomes[0].report or {}
    model_dir, onnx = None, ""
    if final is not None:
        metrics = {
            "evaluation": _evaluation_name(config, report),
            **report_compact(report),
        }
        model_dir = _save(
            final,
            fitter=fitter,
            rows=rows,
            cfg=config,
            metrics=metrics,
            folder=out / "model",
        )
        onnx = _export_onnx(model_dir, final, fitter)
    result = _result(out, model_dir, report, outcomes)
    result.onnx = onnx
    (out / "report.json").write_text(
        json.dumps(_result_json(result, config), indent=2) + "\n"
    )
    return result


def _final_fit(
    fitter: Fitter, rows: Sequence[ManifestRow], cfg: TrainConfig, progress: Any
) -> FitOutcome:
    """After CV: the saved model, on every scan but a validation part."""
    train, val = _inner_split(rows, list(range(len(rows))), cfg)
    scans, val_scans = (len({rows[i].group for i in part}) for part in (train, val))
    print(f"final model: {scans} scans to train, {val_scans} for validation")
    return fitter.fit(train_idx=train, val_idx=val, progress=progress, label="final ")


def _evaluation_name(cfg: TrainConfig, report: dict[str, Any]) -> str:
    """What the card's metrics were measured on."""
    if cfg.cv:
        return "cv"
    if report:
        return "test split"
    return "none (no held-out test: every scan but the validation part was trained on)"


def _export_onnx(folder: Path, final: FitOutcome, fitter: Fitter) -> str:
    """Export model.onnx beside model.keras when it matches Keras (the Predictor
    then serves through onnxruntime); prints and returns what became of it."""
    if fitter.spec.classical:
        line = "no model.onnx: a cnn_svm/cnn_rf head runs on TensorFlow + sklearn"
    else:
        from ml.onnx_export import onnx_export

        done = onnx_export(model_dir=folder, model=final.model)
        line = (
            f"model.onnx kept: matches Keras within {done.max_abs_diff:.2g}"
            if done.kept
            else f"no model.onnx (served through TensorFlow): {done.reason}"
        )
    print(line, flush=True)
    return line


def _one_split(
    fitter: Fitter, rows: Sequence[ManifestRow], cfg: TrainConfig, progress: Any
) -> FitOutcome:
    """One grouped train/validation/test split (no test part when
    ``cfg.test_fraction`` is 0), fitted once."""
    split = grouped_train_val_test(
        rows,
        fractions=(
            1 - cfg.val_fraction - cfg.test_fraction,
            cfg.val_fraction,
            cfg.test_fraction,
        ),
        seed=cfg.seed,
    )
    print(_split_line(rows, split), flush=True)
    return fitter.fit(
        train_idx=list(split.train),
        val_idx=list(split.val),
        test_idx=list(split.test),
        progress=progress,
    )


def _split_line(rows: Sequence[ManifestRow], split: Any) -> str:
    """How many scans (groups) each part of a split got, said plainly."""
    train, val, test = (
        len({rows[i].group for i in part})
        for part in (split.train, split.val, split.test)
    )
    head = f"split: {train} scans to train, {val} for validation (early stopping, "
    head += "threshold, temperature), "
    if test:
        return head + f"held out {test} scans as a test split"
    return head + "no test split: evaluate the model on other data"


def _cross_validate(
    fitter: Fitter, rows: Sequence[ManifestRow], cfg: TrainConfig, progress: Any
) -> tuple[list[FitOutcome], FitOutcome | None]:
    if not cfg.cv:
        outcome = _one_split(fitter, rows, cfg, progress)
        return [outcome], outcome
    folds = [(f.train, f.val) for f in grouped_kfold(rows, k=cfg.cv, seed=cfg.seed)]
    outcomes = []
    for k, (train, test) in enumerate(folds, start=1):
        fit_idx, val_idx = _inner_split(rows, list(train), cfg)
        outcome = fitter.fit(
            train_idx=fit_idx,
            val_idx=val_idx,
            test_idx=list(test),
            progress=progress,
            label=f"fold {k}/{cfg.cv} ",
        )
        outcomes.append(outcome)
        if outcome.cancelled:
            break
        study = (outcome.report or {}).get("study", {})
        print(
            f"fold {k}/{cfg.cv} test study AUC {study.get('auc', float('nan')):.3f}",
            flush=True,
        )
    return outcomes, None


def _result(
    out: Path,
    model_dir: Path | None,
    report: dict,
    outcomes: Sequence[FitOutcome],
    *,
    cancelled: bool = False,
) -> TrainResult:
    seconds = [s for o in outcomes for s in o.epoch_seconds]
    return TrainResult(
        out_dir=out,
        model_dir=model_dir,
        report=report,
        folds=[
            {
                "report": o.report and report_compact(o.report),
                "temperature": o.temperature,
                "threshold": o.threshold,
                "history": o.history,
            }
            for o in outcomes
        ],
        history=[h for o in outcomes for h in o.history],
        seconds_per_epoch=float(np.mean(seconds)) if seconds else 0.0,
        peak_rss_mb=peak_rss_mb(),
        cancelled=cancelled,
    )


def _result_json(result: TrainResult, cfg: TrainConfig) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "report": result.report,
        "folds": result.folds,
        "seconds_per_epoch": result.seconds_per_epoch,
        "peak_rss_mb": result.peak_rss_mb,
        "model_dir": str(result.model_dir) if result.model_dir else None,
        "onnx": result.onnx,
        "code_version": code_version(),
    }
