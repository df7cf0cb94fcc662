"""The hemorrhage segmentation model through its real entry points: trained by the
``train-seg`` CLI on a mask manifest, served by ``Predictor.load``; the synthetic
bleeds it learns from, and the arithmetic of scores and volumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml import synthetic
from ml.cli import main
from ml.inference import OutsideModelScope, Predictor
from ml.io import LoadResult, SliceInfo, StudyMetadata
from ml.modelfile import ModelFileError, model_card_load
from ml.segment.scores import dice, slice_scores, study_volume_ml
from ml.segment.synthetic import LESION_KINDS, augment, paste_lesion
from ml.synthetic.images import window_to_uint8

SIZE, SLICES = 96, 8


def _write_manifest(root: Path, studies: int = 4, *, one_head: bool = False) -> Path:
    """PNG slices and masks of phantom heads (half with a hematoma) and their
    labels.csv, laid out as ct-ich is. ``one_head``: every study is the same head
    with a hematoma, masked in half of them only, so that no score can tell the
    "normal" studies from the bleeds."""
    rows = []
    for number in range(studies):
        bleed = number % 2 == 1
        phantom = synthetic.make_phantom(
            label="hemorrhagic" if bleed or one_head else "normal",
            lesion="intraparenchymal" if bleed or one_head else None,
            size=SIZE,
            slices=SLICES,
            seed=500 + (1 if one_head else number),
        )
        images = window_to_uint8(phantom.volume_hu, window="brain")
        masks = phantom.mask if bleed else np.zeros_like(phantom.mask)
        for k in range(SLICES):
            for kind, pixels in (("images", images[k]), ("masks", masks[k])):
                path = root / kind / f"{number:03d}" / f"{k + 1:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(
                    str(path), (pixels > 0) * 255 if kind == "masks" else pixels
                )
            rows.append(
                {
                    "patient": number,
                    "slice": k + 1,
                    "image": f"images/{number:03d}/{k + 1:02d}.png",
                    "mask": f"masks/{number:03d}/{k + 1:02d}.png",
                }
            )
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A segmentation model trained for one short epoch by the CLI."""
    root = _write_manifest(tmp_path_factory.mktemp("seg-data"))
    out = tmp_path_factory.mktemp("seg-model") / "model"
    code = main(
        [
            "train-seg",
            "--data",
            str(root),
            "--out",
            str(out),
            "--cv",
            "0",
            "--epochs",
            "1",
            "--samples",
            "16",
            "--size",
            "64",
            "--name",
            "seg-test",
        ]
    )
    assert code == 0
    return out


def _train_seg_cli(data: Path, out: Path, *extra: str) -> int:
    """``train-seg`` with 2-fold CV by patient and one short epoch per network."""
    return main(
        [
            "train-seg",
            "--data",
            str(data),
            "--out",
            str(out / "model"),
            "--report",
            str(out / "cv.json"),
            "--cv",
            "2",
            "--epochs",
            "1",
            "--samples",
            "16",
            "--size",
            "64",
            *extra,
        ]
    )


def _load_result(volume: np.ndarray, *, spacing=(0.5, 0.5), slice_mm=5.0, units="HU"):
    return LoadResult(
        volume=volume.astype(np.float32),
        slices=[SliceInfo(source=f"{k}.dcm") for k in range(len(volume))],
        metadata=StudyMetadata(
            source_kind="dicom",
            units=units,
            modality="CT",
            pixel_spacing_mm=spacing,
            slice_spacing_mm=slice_mm,
        ),
    )


def test_the_cli_writes_a_model_the_portal_serves_through_onnxruntime(tiny_model):
    card = model_card_load(tiny_model)
    assert card.architecture == "hemorrhage_seg"
    assert {"model.onnx", "model.keras"} <= set(card.files)
    assert card.extra["finding"] == "hemorrhage"
    assert card.extra["explanation"] == "segmentation"
    assert card.extra["onnx"]["max_abs_diff"] <= 1e-4
    predictor = Predictor.load(tiny_model)
    assert predictor.backend == "onnxruntime"
    phantom = synthetic.make_phantom(label="normal", size=SIZE, slices=SLICES, seed=7)
    prediction = predictor.predict(_load_result(phantom.volume_hu))
    assert prediction.slice_probabilities.shape == (SLICES,)
    assert 0.0 <= prediction.study_probability <= 1.0
    assert prediction.volume_ml is not None and prediction.volume_ml >= 0.0
    assert any(prediction.read_slices)
    maps = predictor.explain(_load_result(phantom.volume_hu), slices=[2])
    assert maps[2].shape == (SIZE, SIZE)
    assert 0.0 <= maps[2].min() <= maps[2].max() <= 1.0


def test_a_study_without_spacing_gets_no_volume(tiny_model):
    phantom = synthetic.make_phantom(label="normal", size=SIZE, slices=SLICES, seed=8)
    prediction = Predictor.load(tiny_model).predict(
        _load_result(phantom.volume_hu, spacing=None, slice_mm=None)
    )
    assert prediction.volume_ml is None


def test_a_study_without_brain_is_outside_the_model(tiny_model):
    water = np.zeros((4, SIZE, SIZE), np.float32) - 1000.0
    water[:, 20:76, 20:76] = 0.0  # a water-filled box: no skull, no brain
    with pytest.raises(OutsideModelScope, match="does not look like an axial head CT"):
        Predictor.load(tiny_model).predict(_load_result(water))


def test_a_tampered_onnx_file_is_refused(tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    (copy / "model.onnx").write_bytes(b"not a network")
    with pytest.raises(ModelFileError, match=r"sha256|model\.onnx"):
        Predictor.load(copy)


@pytest.mark.parametrize("kind", LESION_KINDS)
def test_a_pasted_bleed_is_brighter_than_brain_and_is_its_target(kind):
    phantom = synthetic.make_phantom(label="normal", size=256, slices=12, seed=3)
    from ml.brain import BrainConfig, brain_study
    from ml.segment.data import model_input

    study = brain_study(phantom.volume_hu, units="HU", config=BrainConfig(size=128))
    s = max(study.slices, key=lambda s: s.brain_area * s.is_brain)  # ventricles show
    x = model_input(s)
    rng = np.random.default_rng(0)
    for _ in range(5):  # some draws find no room (no ventricle on the slice)
        out, target, _ = paste_lesion(x, np.zeros(x.shape[:2], np.float32), rng, kind)
        if (target > 0.5).any():
            break
    core = target > 0.5
    assert core.any(), f"no {kind} was pasted"
    assert (out[..., 0][core] - x[..., 0][core]).mean() > 0.1
    assert np.array_equal(out[..., 1], x[..., 1])  # the brain mask is kept
    near = cv2.dilate(core.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    assert np.allclose(out[..., 0][~near], x[..., 0][~near], atol=1e-4)  # only there
    moved, moved_target = augment(out, target, rng)
    assert moved.shape == out.shape and moved_target.shape == target.shape
    assert abs(moved_target.sum() - target.sum()) < 0.5 * target.sum() + 5


def test_slice_score_follows_the_most_probable_brain_pixels():
    maps = np.zeros((2, 32, 32), np.float32)
    brains = np.zeros((2, 32, 32), bool)
    brains[:, 4:28, 4:28] = True
    maps[0, 10:14, 10:14] = 0.9  # a bleed inside the brain
    maps[1, 0:2, 0:2] = 0.9  # bright outside the head: no bleed
    scores = slice_scores(maps, brains)
    assert scores[0] == pytest.approx(0.9)
    assert scores[1] < 0.01


def test_volume_counts_pixels_at_the_contour_level_times_the_spacing():
    a = np.zeros((10, 10), np.float32)
    a[:4, :5] = 0.8  # 20 pixels
    b = np.zeros((10, 10), np.float32)
    b[:2, :5] = 0.6  # 10 pixels
    volume = study_volume_ml(
        [a, None, b], pixel_spacing_mm=(0.5, 0.4), slice_spacing_mm=5.0
    )
    assert volume == pytest.approx(30 * 0.2 * 5.0 / 1000)
    assert study_volume_ml([a], pixel_spacing_mm=None, slice_spacing_mm=5.0) is None
    assert dice(a > 0.5, a > 0.5) == 1.0
    assert dice(a > 0.5, b > 0.5) == pytest.approx(2 * 10 / 30)


def test_the_blob_rule_scores_a_real_region_above_a_confident_speck():
    maps = np.zeros((2, 32, 32), np.float32)
    brains = np.ones((2, 32, 32), bool)
    maps[0, 10:16, 10:16] = 0.8  # a bleed of 36 pixels
    maps[1, 20, 20] = 0.99  # one confident pixel: a calcification, say
    blob = slice_scores(maps, brains, rule="blob")
    peak = slice_scores(maps, brains, rule="peak")
    assert blob[0] > 0.95 and blob[1] < 0.15
    assert peak[1] < peak[0]  # the peak rule sees the speck as 1/6 of a bleed
    with pytest.raises(ValueError, match="score rule"):
        slice_scores(maps, brains, rule="mean")


def _cfg(**kwargs):
    from ml.segment.train import SegTrainConfig

    return SegTrainConfig(**kwargs)


# Ten bleed patients and ten normal ones, scored as out-of-fold study probabilities.
BLEED = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.3, 0.2, 0.1]
NORMAL = [0.88, 0.72, 0.65, 0.5, 0.4, 0.35, 0.25, 0.15, 0.12, 0.05]


@pytest.mark.parametrize(
    ("target", "floor", "expected", "sensitivity", "specificity"),
    [
        (0.95, 0.0, 0.1, 1.0, 0.1),  # sensitivity alone: every bleed, 9 alarms
        (0.95, 0.5, 0.6, 0.7, 0.7),  # 0.3 would find 8 bleeds but flag 6 normals
        (0.95, 0.75, 0.7, 0.6, 0.8),
        (0.95, 0.3, 0.2, 0.9, 0.3),
        (0.6, 0.5, 0.7, 0.6, 0.8),  # target met: the highest threshold meeting it
    ],
)
def test_the_study_threshold_is_the_most_sensitive_that_keeps_the_specificity_floor(
    target, floor, expected, sensitivity, specificity
):
    from ml.evaluation.metrics import binary_metrics
    from ml.segment.train import study_threshold

    y = np.array([1] * len(BLEED) + [0] * len(NORMAL))
    p = np.array(BLEED + NORMAL)
    cfg = _cfg(target_sensitivity=target, min_specificity=floor)
    threshold = study_threshold(y, p, cfg)
    assert threshold == pytest.approx(expected)
    m = binary_metrics(y_true=y, prob=p, threshold=threshold)
    assert (m["sensitivity"], m["specificity"]) == pytest.approx(
        (sensitivity, specificity)
    )


def test_the_study_threshold_is_refused_when_no_threshold_keeps_the_floor():
    from ml.segment.train import study_threshold

    y = np.array([1, 1, 0, 0])
    p = np.array([0.6, 0.4, 0.9, 0.5])  # a normal study above every bleed
    with pytest.raises(ValueError, match=r"no threshold keeps specificity.*0\.6"):
        study_threshold(y, p, _cfg(min_specificity=0.6))
    assert study_threshold(y, p, _cfg(min_specificity=0.5)) == pytest.approx(0.6)


def test_the_specificity_floor_given_to_the_cli_reaches_the_card(tmp_path):
    from ml.segment.train import study_threshold

    data = _write_manifest(tmp_path / "data")
    assert _train_seg_cli(data, tmp_path, "--min-specificity", "0") == 0
    card = model_card_load(tmp_path / "model")
    assert card.extra["min_specificity"] == 0.0  # not the default 0.5
    assert card.extra["train_config"]["min_specificity"] == 0.0
    point = card.metrics["operating_point"]
    assert point["threshold"] == pytest.approx(card.threshold)
    assert point["min_specificity"] == 0.0
    assert point["specificity"] == card.metrics["study"]["specificity"]
    assert point["sensitivity"] == card.metrics["study"]["sensitivity"]
    assert set(point["ci95"]) == {"sensitivity", "specificity"}
    # The report alone gives the threshold again, by patient name, without training.
    report = json.loads((tmp_path / "cv.json").read_text())
    studies = report["out_of_fold"]["studies"]
    assert sorted(s["patient"] for s in studies) == ["0", "1", "2", "3"]
    assert {s["fold"] for s in studies} == {1, 2}
    y = np.array([s["label"] for s in studies])
    p = np.array([s["probability"] for s in studies])
    again = study_threshold(y, p, _cfg(min_specificity=0.0))
    assert again == pytest.approx(card.threshold)
    slices = report["out_of_fold"]["slices"]
    assert len(slices["patient"]) == len(slices["probability"]) == 4 * SLICES
    assert slices["patient"].count("3") == SLICES


def test_training_stops_before_the_final_network_when_the_floor_is_unreachable(
    tmp_path,
):
    # The same head in every study: whatever it scores, each fold's "normal" twin
    # of its bleed scores the same, so at the top bleed's score half the normal
    # studies are flagged, and a floor of 0.9 cannot be met.
    data = _write_manifest(tmp_path / "data", one_head=True)
    code = _train_seg_cli(data, tmp_path, "--min-specificity", "0.9")
    assert code == 1
    assert not (tmp_path / "model" / "model.json").exists()
    report = json.loads((tmp_path / "cv.json").read_text())
    assert "no threshold keeps specificity at or above 0.9" in report["error"]
    studies = report["out_of_fold"]["studies"]
    for fold in (1, 2):  # the premise: a fold's studies are scored alike
        assert len({s["probability"] for s in studies if s["fold"] == fold}) == 1
    assert "threshold" not in report
