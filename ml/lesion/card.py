"""The model card of a lesion-feature model: what it looks for, what it cannot
exclude, how it was trained and how well it did, in the words the portal shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.brain import BRAIN_WINDOW
from ml.datasets import ManifestRow
from ml.evaluation import report_compact
from ml.lesion.features import FEATURE_NAMES
from ml.modelfile import TASK_CLASSES, ModelCard
from ml.provenance import code_version, training_fingerprint

LOOKS_FOR = (
    "regions of the skull-stripped brain clearly brighter than the brain's own "
    "median (acute blood is 25-50 HU above brain tissue) and left-right asymmetry "
    "about the midline"
)
CANNOT_EXCLUDE = (
    "ischaemic stroke without a hyperdense sign, bleeds of a few millimetres "
    "(thalamic, intraventricular), thin subdural collections against the skull, "
    "and bleeds at the skull base or on slices with little brain, which it does "
    "not read"
)


def lesion_card(
    fitted: Any, *, rows: Sequence[ManifestRow], config: Any, report: dict[str, Any]
) -> ModelCard:
    """The :class:`ModelCard` of a ``FittedLesionModel``."""
    model = fitted.model
    size = model.brain.size
    labels = sorted({r.label for r in rows})
    metrics = {"evaluation": f"grouped {config.cv}-fold CV" if config.cv else "none"}
    metrics.update(report_compact(report))
    return ModelCard(
        name=config.name or "lesion-features",
        version=config.version,
        architecture="lesion_features",
        task="binary",
        classes=list(TASK_CLASSES["binary"]),
        modality="CT",
        input_shape=[size, size, 1],
        preprocessing={
            "pipeline": "ml.brain.brain_study",
            "brain": model.brain.to_dict(),
            "window": {"center": BRAIN_WINDOW[0], "width": BRAIN_WINDOW[1]},
        },
        threshold=float(fitted.threshold),
        temperature=float(fitted.temperature),
        metrics=metrics,
        training_data={
            "fingerprint": training_fingerprint(rows),
            "images": len(rows),
            "groups": len({r.group for r in rows}),
            "labels": {label: sum(r.label == label for r in rows) for label in labels},
        },
        code_version=code_version(),
        description=(
            "Lesion-feature model: hyperdensity and left-right asymmetry features of "
            "the skull-stripped, midline-aligned brain, and a regularised logistic "
            f"regression; trained on {len(rows)} images of "
            f"{len({r.group for r in rows})} scans."
        ),
        extra={
            "finding": "hyperdense lesion (acute haemorrhage) or stroke",
            "looks_for": LOOKS_FOR,
            "cannot_exclude": CANNOT_EXCLUDE,
            "explanation": "lesion_map",
            "aggregation": fitted.aggregation,
            "top_k": fitted.top_k,
            "brain_slices_only": True,
            "target_sensitivity": config.target_sensitivity,
            "weights": dict(zip(FEATURE_NAMES, map(float, model.coef), strict=True)),
            "train_config": config.to_dict(),
        },
    )
