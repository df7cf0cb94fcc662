"""The model folder of a hemorrhage segmentation model: ``model.keras`` (float32,
no optimizer), ``model.onnx`` (what the portal serves, checked against the Keras
model) and ``model.json``, whose card says what the model looks for, what it
cannot exclude, where its data came from and under which licence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.brain import BRAIN_WINDOW, BrainConfig
from ml.evaluation import report_compact
from ml.modelfile import TASK_CLASSES, ModelCard, model_card_save
from ml.provenance import code_version
from ml.segment import ARCHITECTURE
from ml.segment.network import INPUT_CHANNELS
from ml.segment.scores import CONTOUR_LEVEL, TOP_PIXELS

LOOKS_FOR = (
    "acute intracranial haemorrhage: blood brighter than the brain inside the "
    "skull (intraparenchymal, epidural, subdural, intraventricular), outlined "
    "pixel by pixel, with its volume when the study gives its spacing"
)
CANNOT_EXCLUDE = (
    "an ischemic stroke (it does not look for one), a bleed of a few millimetres, "
    "thin subarachnoid blood, or a bleed on slices with little brain (skull base, "
    "vertex), which it does not read"
)
CT_ICH_ATTRIBUTION = (
    "Trained on the CT-ICH data of Hssayeni et al. (PhysioNet, 'Computed "
    "Tomography Images for Intracranial Hemorrhage Detection and Segmentation', "
    "doi:10.13026/w8q8-ky94), published open access under the Creative Commons "
    "Attribution 4.0 licence (CC BY 4.0); cite Hssayeni M.D. et al., 'Intracranial "
    "Hemorrhage Segmentation Using a Deep Convolutional Model', Data 2020, "
    "5(1):14, doi:10.3390/data5010014, and Goldberger A. et al., PhysioNet, "
    "Circulation 2000, 101(23):e215-e220. The model is a derivative work: no "
    "image of the data is in it or in the project."
)


def seg_card(
    *,
    cfg: Any,
    rows: Sequence[Any],
    report: dict[str, Any],
    temperature: float,
    threshold: float,
) -> ModelCard:
    """The :class:`ModelCard` of a trained segmentation model (files added on save)."""
    groups = sorted({r.group for r in rows})
    cv = report.get("cv") or {}
    metrics: dict[str, Any] = {
        "evaluation": f"grouped {cfg.cv}-fold CV by patient" if cv else "none"
    }
    if cv:
        metrics.update(report_compact(cv))
        local = cv.get("localisation", {})
        metrics["localisation"] = {
            k: local[k]
            for k in (
                "dice_mean",
                "dice_median",
                "pointing",
                "volume_abs_error_ml_median",
                "stated_spacing_mm",
            )
            if k in local
        }
    if cv.get("operating_point"):
        metrics["operating_point"] = cv["operating_point"]
    external = report.get("external")
    if external:
        metrics["external"] = external
    brain = BrainConfig(size=cfg.size)
    return ModelCard(
        name=cfg.name,
        version=cfg.version,
        architecture=ARCHITECTURE,
        task="binary",
        classes=list(TASK_CLASSES["binary"]),
        modality="CT",
        input_shape=[cfg.size, cfg.size, INPUT_CHANNELS],
        preprocessing={
            "pipeline": "ml.brain.brain_study",
            "brain": brain.to_dict(),
            "window": {"center": BRAIN_WINDOW[0], "width": BRAIN_WINDOW[1]},
            "input": "ml.segment.data.model_input",
        },
        threshold=float(threshold),
        temperature=float(temperature),
        metrics=metrics,
        training_data={
            "source": "ct-ich (CT-ICH, PhysioNet open release) + synthetic lesions",
            "patients": len(groups),
            "images": len(rows),
            "licence": "CC BY 4.0 (data); model: derivative work, attribution below",
            "attribution": CT_ICH_ATTRIBUTION,
        },
        code_version=code_version(),
        description=(
            "Hemorrhage segmentation: a small U-Net on the skull-aligned brain "
            "window that outlines acute intracranial blood pixel by pixel; trained "
            f"on {len(rows)} slices of {len(groups)} patients with radiologists' "
            "masks and on synthetic bleeds pasted into normal slices."
        ),
        extra={
            "finding": "hemorrhage",
            "looks_for": LOOKS_FOR,
            "cannot_exclude": CANNOT_EXCLUDE,
            "explanation": "segmentation",
            "contour_level": CONTOUR_LEVEL,
            "score_rule": getattr(cfg, "score_rule", "peak"),
            "pixel_maps": "mean over the slice and its left-right mirror image",
            "slice_score": (
                f"mean of the {TOP_PIXELS} most probable brain pixels"
                if getattr(cfg, "score_rule", "peak") == "peak"
                else "probability mass of the largest outlined region"
            ),
            "aggregation": cfg.aggregation,
            "top_k": cfg.top_k,
            "brain_slices_only": True,
            "target_sensitivity": cfg.target_sensitivity,
            "min_specificity": cfg.min_specificity,
            "train_config": cfg.to_dict(),
            "command": _command(),
        },
    )


def _command() -> str:
    """The command line that trained the model, when it was the project's CLI."""
    import shlex
    import sys

    if not sys.argv or not sys.argv[0].endswith(("ml/__main__.py", "ml")):
        return ""
    return shlex.join(["python", "-m", "ml", *sys.argv[1:]])


def save_seg_model(
    model: Any,
    *,
    folder: Path,
    cfg: Any,
    rows: Sequence[Any],
    report: dict[str, Any],
    temperature: float,
    threshold: float,
) -> Path:
    """Write ``model.keras``, ``model.json`` and the checked ``model.onnx``;
    RuntimeError when the ONNX export does not match the Keras model."""
    from ml.onnx_export import KERAS_FILE, onnx_export

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file():
            stale.unlink()  # a folder holds one model: no weights of another
    # An uncompiled copy: no optimizer state in the file (a third of the size),
    # and loading it needs no custom loss.
    from ml.segment.network import build_unet

    plain = build_unet(cfg.size, base=cfg.base_filters)
    plain.set_weights(model.get_weights())
    plain.save(folder / KERAS_FILE)
    card = seg_card(
        cfg=cfg, rows=rows, report=report, temperature=temperature, threshold=threshold
    )
    model_card_save(card, folder)
    result = onnx_export(model_dir=folder, model=plain)
    if not result.kept:
        raise RuntimeError(f"the ONNX export was not kept: {result.reason}")
    return folder
