"""The demo model: a small CNN trained on synthetic head-CT phantoms in a few minutes.

It lets the portal run end to end on a fresh machine with no data and no weights to
download. It has seen phantoms only: its card says ``demo: true`` and its metrics
are on held-out phantoms, which says nothing about patients.

Slices are labelled from the phantoms' lesion masks (stroke where a slice shows at
least ``MIN_LESION_PIXELS`` of lesion), and split by phantom: train, validation
(temperature and threshold) and a held-out test set (the card's metrics). This is
a plain in-memory fit: ``ml.training.train_model`` reads images from disk through
a manifest with one label per scan, while the phantoms give a label per slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml import synthetic
from ml.modelfile import TASK_CLASSES, ModelCard, model_card_save
from ml.preprocess import PreprocessConfig, preprocess_volume

MIN_LESION_PIXELS = 4  # at DEMO_SIZE; smaller specks are left out of training
DEMO_SIZE = 64
DEMO_SLICES = 16
DEMO_FILTERS = (16, 16, 32, 32, 64, 64)
DEMO_TOP_K = 3
TARGET_SENSITIVITY = 0.95


@dataclass(frozen=True)
class DemoConfig:
    """How big the demo run is. The defaults train in about two minutes on 2 cores."""

    seed: int = 0
    size: int = DEMO_SIZE
    slices: int = DEMO_SLICES
    train_studies: int = 150
    val_studies: int = 30
    test_studies: int = 45
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3

    def __post_init__(self) -> None:
        counts = (self.train_studies, self.val_studies, self.test_studies)
        if min(counts) < 3:
            raise ValueError(f"every split needs >= 3 studies, got {counts}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


@dataclass
class DemoResult:
    """The written model folder, its held-out metrics and how long it took (s)."""

    model_dir: Path
    metrics: dict[str, Any]
    train_seconds: float
    total_seconds: float
    onnx: str
    history: list[float] = field(default_factory=list)


@dataclass
class _Split:
    x: np.ndarray  # (N, S, S, 1) float32 model input
    y: np.ndarray  # (N,) 0/1, lesion on the slice
    study: np.ndarray  # (N,) study index
    study_y: np.ndarray  # (studies,) 0/1, the phantom has a lesion


def demo_preprocessing(*, size: int = DEMO_SIZE) -> PreprocessConfig:
    """Brain window, one channel, per-slice head crop: what uploads get too."""
    return PreprocessConfig(window="brain", size=size, channels=1, crop=True)


def _phantom_split(
    *, first_seed: int, studies: int, config: DemoConfig, prep: PreprocessConfig
) -> _Split:
    xs, ys, owners, study_y = [], [], [], []
    for i in range(studies):
        label = synthetic.LABELS[i % len(synthetic.LABELS)]
        phantom = synthetic.make_phantom(
            label=label, size=config.size, slices=config.slices, seed=first_seed + i
        )
        area = phantom.mask.sum(axis=(1, 2))
        keep = (area == 0) | (area >= MIN_LESION_PIXELS)
        x = preprocess_volume(phantom.volume_hu, units="HU", config=prep)
        xs.append(x[keep])
        ys.append((area[keep] >= MIN_LESION_PIXELS).astype(np.int32))
        owners.append(np.full(int(keep.sum()), i))
        study_y.append(int(label != "normal"))
    return _Split(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(owners),
        np.array(study_y),
    )


def _study_probs(slice_p: np.ndarray, split: _Split) -> np.ndarray:
    from ml.inference.results import aggregate_slices

    return np.array(
        [
            aggregate_slices(slice_p[split.study == s], method="topk", k=DEMO_TOP_K)
            for s in range(len(split.study_y))
        ]
    )


def _fit(split: _Split, config: DemoConfig, log: Callable[[str], None]) -> Any:
    import keras

    from ml.models import build_model

    keras.utils.set_random_seed(config.seed)
    model = build_model(
        "custom_cnn",
        input_shape=(config.size, config.size, 1),
        filters=DEMO_FILTERS,
        dense=32,
        dropout=0.2,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    positives = max(1, int(split.y.sum()))
    weights = {0: 1.0, 1: float((len(split.y) - positives) / positives)}
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        hist = model.fit(
            split.x,
            split.y,
            epochs=1,
            batch_size=config.batch_size,
            class_weight=weights,
            shuffle=True,
            verbose=0,
        )
        loss = float(hist.history["loss"][-1])
        log(f"epoch {epoch}/{config.epochs}: loss {loss:.4f} ")
        log(f"({time.perf_counter() - start:.1f} s)\n")
    return model


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Softmax outputs (N, 2) in batches through one compiled function."""
    return np.asarray(model.predict(x, batch_size=64, verbose=0), np.float32)


def _calibrate(model: Any, val: _Split) -> tuple[float, float, float]:
    """Temperature (slice level), then study and slice thresholds for the target
    sensitivity, all on the validation phantoms."""
    from ml.evaluation import fit_temperature, logits_from_probs
    from ml.evaluation import threshold_for_sensitivity as for_sensitivity
    from ml.inference.results import temperature_softmax

    probs = _predict(model, val.x)
    temperature = fit_temperature(logits=logits_from_probs(probs), labels=val.y)
    slice_p = 1.0 - temperature_softmax(probs, temperature=temperature)[:, 0]
    study_p = _study_probs(slice_p, val)
    threshold = for_sensitivity(
        y_true=val.study_y, prob=study_p, target=TARGET_SENSITIVITY
    )
    slice_threshold = for_sensitivity(
        y_true=val.y, prob=slice_p, target=TARGET_SENSITIVITY
    )
    return float(temperature), _inside(threshold), _inside(slice_threshold)


def _inside(threshold: float) -> float:
    """A threshold the card accepts (strictly between 0 and 1)."""
    return float(min(max(threshold, 0.01), 0.99))


def _evaluate(
    model: Any, test: _Split, *, temperature: float, threshold: float
) -> dict[str, Any]:
    from ml.evaluation import binary_metrics, roc_auc
    from ml.inference.results import temperature_softmax

    probs = temperature_softmax(_predict(model, test.x), temperature=temperature)
    slice_p = 1.0 - probs[:, 0]
    study_p = _study_probs(slice_p, test)
    study = binary_metrics(y_true=test.study_y, prob=study_p, threshold=threshold)
    return {
        "evaluation": "held-out synthetic phantoms (not patients)",
        "test_studies": len(test.study_y),
        "test_slices": len(test.y),
        "slice_auc": roc_auc(y_true=test.y, prob=slice_p),
        "study_auc": roc_auc(y_true=test.study_y, prob=study_p),
        "study": _plain(study),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def demo_model_train(
    *,
    out_dir: str | Path,
    config: DemoConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Generate phantoms, train the demo CNN, calibrate, evaluate on held-out
    phantoms and write a model folder to ``out_dir`` (model.keras, model.json with
    ``demo: true`` and the metrics, and model.onnx when the export agrees).

    ``out_dir`` must not exist or be empty. ``log`` receives progress text.
    """
    config = config or DemoConfig()
    write = log or (lambda _text: None)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose a new folder for the demo model")
    started = time.perf_counter()
    prep = demo_preprocessing(size=config.size)
    base = config.seed * 100_000
    splits = {
        name: _phantom_split(
            first_seed=base + offset, studies=count, config=config, prep=prep
        )
        for name, offset, count in (
            ("train", 0, config.train_studies),
            ("val", 50_000, config.val_studies),
            ("test", 80_000, config.test_studies),
        )
    }
    write(f"phantoms ready: {len(splits['train'].y)} training slices ")
    write(f"({time.perf_counter() - started:.1f} s)\n")
    fit_start = time.perf_counter()
    model = _fit(splits["train"], config, write)
    train_seconds = time.perf_counter() - fit_start
    temperature, threshold, slice_threshold = _calibrate(model, splits["val"])
    metrics = _evaluate(
        model, splits["test"], temperature=temperature, threshold=threshold
    )
    metrics["train_seconds"] = round(train_seconds, 1)
    folder = _save(
        model,
        out,
        config=config,
        prep=prep,
        metrics=metrics,
        calibration=(temperature, threshold, slice_threshold),
    )
    onnx = _export(folder, model)
    total = time.perf_counter() - started
    return DemoResult(folder, metrics, train_seconds, total, onnx)


def _save(
    model: Any,
    out: Path,
    *,
    config: DemoConfig,
    prep: PreprocessConfig,
    metrics: dict[str, Any],
    calibration: tuple[float, float, float],
) -> Path:
    from ml.onnx_export import KERAS_FILE

    temperature, threshold, slice_threshold = calibration
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / KERAS_FILE)
    card = ModelCard(
        name="demo-phantom-cnn",
        version=f"demo-{config.seed}",
        architecture="custom_cnn",
        task="binary",
        classes=list(TASK_CLASSES["binary"]),
        modality="CT",
        input_shape=[config.size, config.size, 1],
        preprocessing=prep.to_dict(),
        threshold=threshold,
        temperature=temperature,
        metrics=metrics,
        training_data={
            "source": "ml.synthetic phantoms (normal/ischemic/hemorrhagic)",
            "studies": config.train_studies,
            "seed": config.seed,
        },
        demo=True,
        description=(
            "DEMO ONLY: a small CNN trained on synthetic phantoms so that the portal "
            "runs without data. It has never seen a patient's CT."
        ),
        extra={
            "aggregation": "topk",
            "top_k": DEMO_TOP_K,
            "slice_threshold": slice_threshold,
            "target_sensitivity": TARGET_SENSITIVITY,
            "demo_config": {k: getattr(config, k) for k in config.__annotations__},
        },
    )
    model_card_save(card, out)
    return out


def _export(folder: Path, model: Any) -> str:
    from ml.onnx_export import onnx_export

    result = onnx_export(model_dir=folder, model=model)
    if result.kept:
        return f"model.onnx kept (max |diff| {result.max_abs_diff:.2g})"
    return f"no model.onnx: {result.reason}"
