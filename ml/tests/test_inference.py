"""ml.inference: verified loading, batched prediction, ONNX serving, geometry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import synthetic
from ml.inference import (
    ModelFileError,
    Predictor,
    aggregate_slices,
    geometry,
    temperature_sigmoid,
    temperature_softmax,
    top_k_indices,
)
from ml.io import LoadResult, SliceInfo, StudyMetadata, load_study
from ml.modelfile import (
    ModelCard,
    model_archive_pack,
    model_card_load,
    model_card_save,
)
from ml.onnx_export import (
    KERAS_FILE,
    ONNX_FILE,
    check_batch,
    keras_outputs,
    load_keras_model,
    onnx_export,
)
from ml.preprocess import PreprocessConfig, preprocess_study

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
TINY_FILTERS = (8, 8, 8, 8, 8, 8)


def save_model_folder(
    model, folder: Path, *, architecture: str, task: str = "binary", **card
) -> Path:
    """Save ``model`` as a model folder (model.keras + model.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / KERAS_FILE)
    shape = [None if d is None else int(d) for d in model.inputs[0].shape[1:]]
    fields = {
        "name": f"test-{architecture}",
        "version": "1",
        "architecture": architecture,
        "task": task,
        "classes": ["normal", "stroke"]
        if task == "binary"
        else ["normal", "ischemic", "hemorrhagic"],
        "modality": "CT",
        "input_shape": shape,
        "preprocessing": PreprocessConfig(
            size=int(model.inputs[0].shape[-2])
        ).to_dict(),
        "study_level": len(shape) == 4,
        **card,
    }
    model_card_save(ModelCard(**fields), folder)
    return folder


@pytest.fixture(scope="session")
def slice_folder(tmp_path_factory) -> Path:
    """A tiny untrained custom_cnn (32 px, binary) with a kept ONNX export."""
    from ml.models import build_model

    model = build_model(
        "custom_cnn", input_shape=(SIZE, SIZE, 1), filters=TINY_FILTERS, dense=8
    )
    folder = save_model_folder(
        model, tmp_path_factory.mktemp("slice") / "m", architecture="custom_cnn"
    )
    assert onnx_export(model_dir=folder).kept
    return folder


@pytest.fixture(scope="session")
def type_folder(tmp_path_factory) -> Path:
    from ml.models import build_model

    model = build_model(
        "custom_cnn",
        input_shape=(SIZE, SIZE, 1),
        task="type",
        filters=TINY_FILTERS,
        dense=8,
    )
    folder = tmp_path_factory.mktemp("type") / "m"
    return save_model_folder(
        model, folder, architecture="custom_cnn", task="type", threshold=0.01
    )


@pytest.fixture(scope="session")
def study_folder(tmp_path_factory) -> Path:
    from ml.models import build_model

    model = build_model(
        "cnn_lstm",
        input_shape=(None, SIZE, SIZE, 1),
        filters=TINY_FILTERS,
        dense=8,
        units=4,
    )
    folder = tmp_path_factory.mktemp("study") / "m"
    return save_model_folder(model, folder, architecture="cnn_lstm")


@pytest.fixture(scope="session")
def dicom_study(tmp_path_factory) -> LoadResult:
    """A 9-slice hemorrhagic phantom written as a CT series and read by ml.io."""
    phantom = synthetic.make_phantom(label="hemorrhagic", size=64, slices=9, seed=5)
    folder = tmp_path_factory.mktemp("dicom")
    return load_study(synthetic.write_dicom_series(phantom, folder))


def phantom_study(*, slices: int, seed: int = 1, modality: str = "CT") -> LoadResult:
    phantom = synthetic.make_phantom(
        label="ischemic", size=48, slices=slices, seed=seed
    )
    infos = [SliceInfo(source=f"slice{k}") for k in range(slices)]
    meta = StudyMetadata(source_kind="test", units="HU", modality=modality)
    return LoadResult(volume=phantom.volume_hu, slices=infos, metadata=meta)


def copy_folder(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


# --- import hygiene ------------------------------------------------------------------


def test_importing_inference_does_not_import_tensorflow():
    code = (
        "import sys, ml.inference, ml.explain, ml.onnx_export\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- loading -------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(slice_folder):
    from ml.models import build_model

    model = build_model(
        "custom_cnn", input_shape=(SIZE, SIZE, 1), filters=TINY_FILTERS, dense=8
    )
    folder = save_model_folder(
        model, slice_folder.parent / "round", architecture="custom_cnn"
    )
    batch = check_batch(input_shape=[SIZE, SIZE, 1])
    before = keras_outputs(model, batch)["probs"]
    after = keras_outputs(load_keras_model(folder / KERAS_FILE), batch)["probs"]
    assert np.array_equal(before, after)
    predictor = Predictor.load(folder, backend="tensorflow", batch_size=4)
    served = predictor._runner(batch[:3])["probs"]  # padded to the batch of 4
    np.testing.assert_allclose(served, before[:3], atol=1e-6)


def test_onnx_export_agrees_with_keras_and_is_served(slice_folder, dicom_study):
    card = model_card_load(slice_folder)
    assert ONNX_FILE in card.files
    assert card.extra["onnx"]["max_abs_diff"] <= 1e-4
    onnx = Predictor.load(slice_folder)
    keras_only = Predictor.load(slice_folder, backend="tensorflow")
    assert onnx.backend == "onnxruntime" and onnx.onnx.used
    assert keras_only.backend == "tensorflow"
    a, b = onnx.predict(dicom_study), keras_only.predict(dicom_study)
    np.testing.assert_allclose(a.slice_probabilities, b.slice_probabilities, atol=1e-4)
    assert a.label == b.label


def test_a_tampered_weights_file_is_refused(slice_folder, tmp_path):
    folder = copy_folder(slice_folder, tmp_path)
    data = bytearray((folder / KERAS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / KERAS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        Predictor.load(folder)


def test_a_tampered_onnx_file_refuses_the_model(slice_folder, tmp_path):
    folder = copy_folder(slice_folder, tmp_path)
    with (folder / ONNX_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileError, match=ONNX_FILE):
        Predictor.load(folder)


def _edit_card(folder: Path, **changes) -> None:
    card = model_card_load(folder)
    for key, value in changes.items():
        setattr(card, key, value)
    model_card_save(card, folder)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"preprocessing": PreprocessConfig(size=SIZE, channels=3).to_dict()},
            "3 channel",
        ),
        ({"preprocessing": PreprocessConfig(size=64).to_dict()}, "64x64"),
        (
            {
                "input_shape": [64, 64, 1],
                "preprocessing": PreprocessConfig(size=64).to_dict(),
            },
            "takes input",
        ),
        (
            {"task": "type", "classes": ["normal", "ischemic", "hemorrhagic"]},
            "outputs 2 classes",
        ),
        ({"preprocessing": {"window": "lung", "size": SIZE}}, "preprocessing"),
    ],
)
def test_a_card_that_does_not_fit_the_model_is_refused(
    slice_folder, tmp_path, changes, message
):
    folder = copy_folder(slice_folder, tmp_path)
    (folder / ONNX_FILE).unlink()  # keep the folder's files consistent
    _edit_card(folder, **changes)
    with pytest.raises(ModelFileError, match=message):
        Predictor.load(folder)


def test_a_missing_or_foreign_path_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        Predictor.load(tmp_path / "nowhere")
    (tmp_path / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a zip"):
        Predictor.load(tmp_path / "model.zip")
    with pytest.raises(ModelFileError, match=r"model\.json"):
        Predictor.load(tmp_path)


def test_a_model_archive_loads_like_its_folder(slice_folder, tmp_path, dicom_study):
    archive = model_archive_pack(slice_folder, tmp_path / "model.zip")
    from_zip = Predictor.load(archive).predict(dicom_study)
    from_folder = Predictor.load(slice_folder).predict(dicom_study)
    np.testing.assert_allclose(
        from_zip.slice_probabilities, from_folder.slice_probabilities, atol=1e-6
    )


def test_onnx_that_disagrees_falls_back_to_tensorflow(slice_folder, tmp_path):
    from ml.models import build_model

    folder = copy_folder(slice_folder, tmp_path)
    other = build_model(
        "custom_cnn", input_shape=(SIZE, SIZE, 1), filters=TINY_FILTERS, dense=8
    )
    other.save(folder / KERAS_FILE)  # different weights than model.onnx
    _edit_card(folder)  # re-record the sha256 sums: a consistent but stale export
    predictor = Predictor.load(folder)
    assert predictor.backend == "tensorflow"
    assert "differs" in predictor.onnx.reason
    with pytest.raises(ModelFileError, match="onnxruntime"):
        Predictor.load(folder, backend="onnxruntime")


# --- predicting ----------------------------------------------------------------------


def test_predict_on_a_dicom_series_from_ml_io(slice_folder, dicom_study):
    predictor = Predictor.load(slice_folder, backend="tensorflow", batch_size=4)
    calls = []
    result = predictor.predict(dicom_study, progress=lambda d, t: calls.append((d, t)))
    depth = len(dicom_study.volume)
    probs = result.slice_probabilities
    assert probs.shape == (depth,) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    assert calls == [(0, depth), (4, depth), (8, depth), (9, depth)]
    assert result.top_slices == list(top_k_indices(probs, k=3))
    assert result.study_probability == pytest.approx(
        aggregate_slices(probs, method="topk", k=5)
    )
    assert result.label in ("stroke", "normal") and result.confidence >= 0.5
    assert (result.label == "stroke") == (result.study_probability >= 0.5)
    assert set(result.timings) == {"preprocess_s", "predict_s"}
    assert result.model_name == "test-custom_cnn" and result.backend == "tensorflow"
    assert result.to_dict()["slice_probabilities"] == pytest.approx(probs.tolist())


def test_studies_of_any_depth_reuse_one_compiled_graph(slice_folder):
    predictor = Predictor.load(slice_folder, backend="tensorflow", batch_size=4)
    for depth in (3, 7, 10):
        result = predictor.predict(phantom_study(slices=depth))
        assert len(result.slice_probabilities) == depth
    assert predictor._runner.tracing_count == 1


def test_a_study_of_another_modality_is_refused(slice_folder):
    predictor = Predictor.load(slice_folder, backend="tensorflow")
    with pytest.raises(ValueError, match="study is MR but model"):
        predictor.predict(phantom_study(slices=3, modality="MR"))


def test_a_type_model_reports_stroke_type(type_folder):
    result = Predictor.load(type_folder).predict(phantom_study(slices=4))
    assert set(result.type_probabilities) == {"normal", "ischemic", "hemorrhagic"}
    assert sum(result.type_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.label == "stroke"  # threshold 0.01
    assert result.stroke_type in ("ischemic", "hemorrhagic")


def test_a_study_model_scores_every_slice(study_folder):
    predictor = Predictor.load(study_folder, backend="tensorflow")
    for depth in (5, 8):
        result = predictor.predict(phantom_study(slices=depth))
        assert result.slice_probabilities.shape == (depth,)
        assert "study output" in result.aggregation
    maps = predictor.explain(phantom_study(slices=8), slices=[1, 6], space="input")
    assert sorted(maps) == [1, 6] and maps[1].shape == (SIZE, SIZE)


def test_a_study_model_exports_to_onnx_and_agrees(study_folder, tmp_path):
    folder = copy_folder(study_folder, tmp_path)
    result = onnx_export(model_dir=folder)
    assert result.kept, result.reason
    assert result.max_abs_diff <= 1e-4
    study = phantom_study(slices=6)
    served = Predictor.load(folder).predict(study)
    reference = Predictor.load(folder, backend="tensorflow").predict(study)
    assert served.backend == "onnxruntime"
    np.testing.assert_allclose(
        served.slice_probabilities, reference.slice_probabilities, atol=1e-4
    )


# --- arithmetic ----------------------------------------------------------------------


def test_temperature_scaling_keeps_the_ranking_and_softens():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    np.testing.assert_allclose(temperature_softmax(probs, temperature=1.0), probs)
    soft = temperature_softmax(probs, temperature=2.0)
    assert np.all(np.abs(soft - 0.5) < np.abs(probs - 0.5))
    assert np.array_equal(soft.argmax(1), probs.argmax(1))
    sig = temperature_sigmoid(np.array([0.9, 0.1]), temperature=2.0)
    assert 0.5 < sig[0] < 0.9 and 0.1 < sig[1] < 0.5
    with pytest.raises(ValueError, match="positive"):
        temperature_softmax(probs, temperature=0.0)


def test_aggregation_matches_the_evaluation_rule():
    from ml.evaluation.metrics import aggregate_by_group

    rng = np.random.default_rng(0)
    probs = rng.random(23)
    for method in ("mean", "max", "topk"):
        _, expected = aggregate_by_group(
            prob=probs, groups=["s"] * 23, method=method, k=5
        )
        assert aggregate_slices(probs, method=method, k=5) == pytest.approx(expected[0])
    with pytest.raises(ValueError, match="median"):
        aggregate_slices(probs, method="median")


def _marked_head(*, skull: bool) -> np.ndarray:
    """(1, 120, 90) HU: an off-centre oval head (optionally in a skull ring), tilted
    by 20 degrees, with a bright 6-pixel marker at rows 82..87, columns 50..55."""
    yy, xx = np.mgrid[0:120, 0:90]
    u, v = (xx - 42) * 0.94 + (yy - 66) * 0.34, (yy - 66) * 0.94 - (xx - 42) * 0.34
    r = np.hypot(u / 30.0, v / 42.0)
    volume = np.full((1, 120, 90), -1000.0, np.float32)
    volume[0][r < 1] = 1000.0 if skull else 40.0
    volume[0][r < 0.88] = 30.0 if skull else 40.0
    volume[0, 82:88, 50:56] = 80.0  # the marker, brighter than the "brain"
    return volume


@pytest.mark.parametrize("brain", [False, True])
def test_heatmaps_map_back_onto_the_original_slice(brain):
    """A marked spot pushed through preprocessing (crop + letterbox, or the brain
    alignment) and back with the matrix it returned lands where it was."""
    volume = _marked_head(skull=brain)
    config = PreprocessConfig(size=64, window="brain", crop=True, brain=brain)
    prepared = preprocess_study(volume, units="HU", config=config)
    # Brain input: level 40 / width 120, so 80 HU is 0.83 and 30 HU 0.42.
    marker = (prepared.x[0, ..., 0] > (0.7 if brain else 0.9)).astype(np.float32)
    assert 0 < marker.sum() < 40
    matrix = prepared.matrices[0]
    assert not np.allclose(matrix, [[1, 0, 0], [0, 1, 0]])  # it did something
    back = geometry.input_to_slice(marker, matrix=matrix, slice_shape=(120, 90))
    peak = np.unravel_index(np.argmax(back), back.shape)
    assert 81 <= peak[0] <= 88 and 49 <= peak[1] <= 56
