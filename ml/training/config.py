"""Training configuration and result objects (no TensorFlow here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.preprocess import AugmentConfig, PreprocessConfig

#: ``progress(epoch, total, logs)``; returning False cancels training.
ProgressCallback = Callable[[int, int, dict[str, Any]], "bool | None"]
SPLIT_MODES = ("grouped", "random_slice")
LR_SCHEDULES = ("cosine", "plateau", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in model.json.

    ``cv``: 0 for one grouped train/val/test split (``val_fraction``,
    ``test_fraction`` of the split groups of each label; ``test_fraction`` 0 trains
    one model on every scan but the validation part, with no held-out test), k >= 2
    for grouped stratified k-fold (each fold's training part gives up
    ``val_fraction`` of its groups for early stopping, threshold and temperature;
    ``final_fit`` then trains the saved model on all scans the same way). ``split_mode``
    ``"random_slice"`` ignores the groups: only for the leakage report.
    ``steps_fraction`` < 1 shows each epoch a random part of the training slices.
    """

    architecture: str = "custom_cnn"
    task: str = "binary"
    preprocessing: PreprocessConfig = field(
        default_factory=lambda: PreprocessConfig(size=128)
    )
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    patience: int = 4
    class_weights: bool = True
    cv: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_mode: str = "grouped"
    seed: int = 0
    target_sensitivity: float = 0.95
    aggregation: str = "topk"
    top_k: int = 5
    steps_fraction: float = 1.0
    max_slices: int = 64
    final_fit: bool = True
    weights_path: str | None = None
    cache_dir: str | None = None
    n_boot: int = 1000
    name: str = ""
    version: str = "1"

    def __post_init__(self) -> None:
        from ml.models import architecture_spec

        architecture_spec(self.architecture)
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.cv == 0 or self.cv >= 2, f"cv must be 0 or >= 2, got {self.cv}"),
            (self.split_mode in SPLIT_MODES, f"split_mode not in {SPLIT_MODES}"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule not in {LR_SCHEDULES}"),
            (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)"),
            (0 <= self.test_fraction < 1, "test_fraction must be in [0, 1)"),
            (
                self.val_fraction + self.test_fraction < 1,
                "val_fraction + test_fraction must leave scans to train on",
            ),
            (0 < self.steps_fraction <= 1, "steps_fraction must be in (0, 1]"),
            (0 < self.target_sensitivity <= 1, "target_sensitivity in (0, 1]"),
            (self.learning_rate > 0, "learning_rate must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def study_level(self) -> bool:
        from ml.models import architecture_spec

        return architecture_spec(self.architecture).study_level

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested configs as dicts)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["preprocessing"] = self.preprocessing.to_dict()
        out["augment"] = self.augment.to_dict() if self.augment else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        values = dict(data)
        if isinstance(values.get("preprocessing"), Mapping):
            values["preprocessing"] = PreprocessConfig.from_dict(
                values["preprocessing"]
            )
        if isinstance(values.get("augment"), Mapping):
            values["augment"] = AugmentConfig.from_dict(values["augment"])
        return cls(**values)


@dataclass
class TrainResult:
    """What :func:`ml.training.train_model` produced.

    ``report``: evaluation on held-out data (the test split, or the pooled
    out-of-fold predictions of CV) as from ``ml.evaluation.evaluate_predictions``;
    ``folds``: per-fold reports; ``model_dir``: the saved model folder (None when
    no final model was trained or training was cancelled); ``onnx``: what became
    of the ONNX export ("model.onnx kept: ..." or "no model.onnx: why").
    """

    out_dir: Path
    model_dir: Path | None
    report: dict[str, Any]
    folds: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    peak_rss_mb: float = 0.0
    cancelled: bool = False
    onnx: str = ""
