"""ml.training: splits never leak a scan, the cache, batches, and a tiny real run
that writes a valid model folder and honours the progress callback."""

import json

import numpy as np
import pytest

from ml.datasets import read_manifest
from ml.modelfile import model_card_load, model_files_verify
from ml.preprocess import AugmentConfig, PreprocessConfig
from ml.synthetic import synthesize_dataset
from ml.training import TrainConfig, train_model

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """12 synthetic studies of 4 PNG slices at 64 px, indexed."""
    from ml.datasets import index_folder, write_manifest

    root = tmp_path_factory.mktemp("phantoms")
    data = root / "data"
    synthesize_dataset(
        data, studies=12, seed=7, size=64, slices=4, fmt="png", masks="none"
    )
    manifest = root / "manifest.csv"
    write_manifest(index_folder(data, workers=1).rows, manifest)
    return data, manifest


def _config(tmp_path, **overrides):
    values = {
        "architecture": "custom_cnn",
        "preprocessing": PreprocessConfig(size=16),
        "epochs": 2,
        "batch_size": 8,
        "val_fraction": 0.34,
        "test_fraction": 0.34,
        "cache_dir": str(tmp_path / "cache"),
        "n_boot": 20,
        "model_options": {"filters": [8, 8, 8, 8, 8, 8], "dense": 8},
    }
    return TrainConfig(**{**values, **overrides})


def test_train_config_round_trips_through_json():
    config = TrainConfig(architecture="cnn_lstm", cv=5, model_options={"rnn": "gru"})
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"architecture": "alexnet"}, "unknown architecture"),
        ({"cv": 1}, "cv must be"),
        ({"split_mode": "by_slice"}, "split_mode"),
        ({"epochs": 0}, "epochs"),
        ({"steps_fraction": 0}, "steps_fraction"),
    ],
)
def test_train_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_train_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"epochz": 3})


def test_grouped_cv_never_puts_one_scan_on_two_sides(phantoms, tmp_path, monkeypatch):
    from ml.training import loop

    data, manifest = phantoms
    rows = read_manifest(manifest)
    seen = []

    def spy_fit(self, *, train_idx, val_idx, test_idx=(), progress=None, label=""):
        seen.append((train_idx, val_idx, test_idx))
        y = [int(rows[i].label != "normal") for i in test_idx]
        groups = [rows[i].group for i in test_idx]
        outcome = loop.FitOutcome(None, None, 1.0, 0.5, 0.5)
        outcome.held_out = {
            "y": y,
            "groups": groups,
            "slice": [0.5] * len(y),
            "study": dict.fromkeys(groups, 0.5),
        }
        return outcome

    monkeypatch.setattr(loop.Fitter, "fit", spy_fit)
    result = train_model(
        manifest=manifest,
        data_root=data,
        config=_config(tmp_path, cv=3, final_fit=False),
        out_dir=tmp_path / "out",
    )
    assert len(seen) == 3
    tested = []
    for train, val, test in seen:
        sides = [{rows[i].group for i in part} for part in (train, val, test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        tested += sorted(sides[2])
    assert sorted(tested) == sorted({r.group for r in rows})  # every scan tested once
    assert result.report["study"]["n"] == 12


def test_slice_cache_is_built_once_per_preprocessing(phantoms, tmp_path):
    from ml.training.data import slice_cache

    data, manifest = phantoms
    rows = read_manifest(manifest)
    config = PreprocessConfig(size=16)
    first = slice_cache(rows=rows, data_root=data, config=config, cache_dir=tmp_path)
    again = slice_cache(rows=rows, data_root=data, config=config, cache_dir=tmp_path)
    other = slice_cache(
        rows=rows, data_root=data, config=PreprocessConfig(size=24), cache_dir=tmp_path
    )
    assert first.shape == (48, 16, 16, 1) and first.dtype == np.float32
    assert first.filename == again.filename != other.filename
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_study_batches_augment_all_slices_of_a_study_alike():
    from ml.training.data import StudyBatches

    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))[..., None]
    cache = np.stack([ramp] * 3)
    flip_only = AugmentConfig(
        hflip_prob=1.0, rotate_prob=0, shift_prob=0, zoom_prob=0, intensity_prob=0,
        noise_prob=0,
    )  # fmt: skip
    batches = StudyBatches(
        cache=cache,
        studies=[[0, 1, 2]],
        labels=np.array([1, 1, 1]),
        classes=2,
        augment_config=flip_only,
    )
    x, y, w = batches[0]
    assert x.shape == (1, 3, 16, 16, 1)
    assert np.array_equal(x[0, 0], ramp[:, ::-1]) and np.array_equal(x[0, 0], x[0, 2])
    assert y["study"].tolist() == [[0.0, 1.0]] and y["slices"].shape == (1, 3, 1)
    assert w["slices"].shape == (1, 3)


@pytest.mark.slow
def test_train_model_writes_a_valid_model_and_reports_progress(
    phantoms, tmp_path, capsys
):
    from ml.inference import Predictor

    data, manifest = phantoms
    calls = []
    result = train_model(
        manifest=manifest,
        data_root=data,
        config=_config(tmp_path),
        out_dir=tmp_path / "run",
        progress=lambda epoch, total, logs: calls.append(
            (epoch, total, "val_auc" in logs)
        ),
    )
    assert calls == [(1, 2, True), (2, 2, True)]
    card = model_card_load(result.model_dir)
    model_files_verify(result.model_dir, card)
    assert card.architecture == "custom_cnn" and card.input_shape == [16, 16, 1]
    assert 0 < card.threshold < 1 and card.temperature > 0
    assert len(card.training_data["fingerprint"]) == 64
    assert card.preprocessing == PreprocessConfig(size=16).to_dict()
    assert {"slice", "study"} <= set(card.metrics)
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["report"]["study"]["n"] == card.metrics["study"]["n"]
    assert card.metrics["evaluation"] == "test split"
    assert "held out 3 scans as a test split" in capsys.readouterr().out
    # The export is kept because it matches Keras, and then serves.
    assert "model.onnx" in card.files and card.extra["onnx"]["max_abs_diff"] <= 1e-4
    assert Predictor.load(result.model_dir).backend == "onnxruntime"


@pytest.mark.slow
def test_train_model_with_no_test_split_trains_on_every_scan_but_validation(
    phantoms, tmp_path, capsys
):
    data, manifest = phantoms
    result = train_model(
        manifest=manifest,
        data_root=data,
        config=_config(tmp_path, test_fraction=0.0, architecture="cnn_svm"),
        out_dir=tmp_path / "run",
    )
    card = model_card_load(result.model_dir)
    printed = capsys.readouterr().out
    assert result.report == {} and card.metrics["evaluation"].startswith("none")
    assert "9 scans to train, 3 for validation" in printed
    assert "no test split" in printed
    # A classical head cannot be exported; the run says so and keeps no file.
    assert "no model.onnx: a cnn_svm/cnn_rf head" in result.onnx
    assert "model.onnx" not in card.files


@pytest.mark.slow
def test_progress_returning_false_cancels_without_a_model(phantoms, tmp_path):
    data, manifest = phantoms
    result = train_model(
        manifest=manifest,
        data_root=data,
        config=_config(tmp_path, epochs=5),
        out_dir=tmp_path / "run",
        progress=lambda epoch, total, logs: False,
    )
    assert result.cancelled and result.model_dir is None
    assert len(result.history) == 1


@pytest.mark.slow
def test_cnn_lstm_trains_on_whole_scans(phantoms, tmp_path):
    data, manifest = phantoms
    config = _config(
        tmp_path,
        architecture="cnn_lstm",
        model_options={"filters": [8] * 6, "dense": 8, "units": 8},
    )
    result = train_model(
        manifest=manifest, data_root=data, config=config, out_dir=tmp_path / "run"
    )
    card = model_card_load(result.model_dir)
    assert card.study_level and card.input_shape == [None, 16, 16, 1]
    assert result.report["aggregation"] == {"method": "model"}
