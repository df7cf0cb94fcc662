"""Every architecture builds, trains a step and predicts on tiny inputs."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ml.models import (  # noqa: E402
    ARCHITECTURES,
    build_model,
    embedding_layer,
    gradcam_layers,
)
from ml.models.classical import (  # noqa: E402
    classical_head_fit,
    classical_head_load,
    classical_head_predict,
    classical_head_save,
)

SLICE_ARCHS = [n for n, s in ARCHITECTURES.items() if not (s.study_level or s.features)]


def _tiny_batch(channels=1, side=32, classes=2, n=2):
    rng = np.random.default_rng(0)
    x = rng.random((n, side, side, channels), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    return x, y


@pytest.mark.parametrize("architecture", SLICE_ARCHS)
def test_slice_model_trains_a_step_and_predicts(architecture):
    keras.utils.set_random_seed(1)
    model = build_model(architecture, input_shape=(32, 32, 1))
    model.compile(optimizer="adam", loss="categorical_crossentropy", run_eagerly=True)
    x, y = _tiny_batch()
    loss = model.train_on_batch(x, y)
    probs = model.predict(x, verbose=0)
    assert np.isfinite(loss)
    assert model.output_names == ["probs"]
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_mobilenet_accepts_one_and_three_channels_for_the_type_task(channels):
    model = build_model("mobilenet_v2", input_shape=(32, 32, channels), task="type")
    x, _ = _tiny_batch(channels=channels)
    assert model.predict(x, verbose=0).shape == (2, 3)


def test_cnn_lstm_reads_any_number_of_slices(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_model("cnn_lstm", input_shape=(None, 32, 32, 1), rnn="gru")
    model.compile(
        optimizer="adam",
        loss={"study": "categorical_crossentropy", "slices": "binary_crossentropy"},
        run_eagerly=True,
    )
    x = np.random.default_rng(0).random((1, 4, 32, 32, 1), dtype=np.float32)
    y = {"study": np.array([[0.0, 1.0]]), "slices": np.ones((1, 4, 1))}
    assert np.all(np.isfinite(model.train_on_batch(x, y)))
    for depth in (3, 7):
        out = model.predict(np.zeros((1, depth, 32, 32, 1), np.float32), verbose=0)
        assert out["study"].shape == (1, 2)
        assert out["slices"].shape == (1, depth, 1)
    model.save(tmp_path / "lstm.keras")  # custom fold layers must serialise
    again = keras.saving.load_model(tmp_path / "lstm.keras")
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["study"], model.predict(x, verbose=0)["study"]
    )


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [
        ("custom_cnn", ["conv6"]),
        ("resnet_mobilenet_fusion", ["conv5_block3_out", "out_relu"]),
        ("mobilenet_v2", ["out_relu"]),
        ("cnn_lstm", ["enc_conv6"]),
        ("cnn_svm", ["conv6"]),
    ],
)
def test_gradcam_layers_are_reachable_from_the_outer_model(architecture, expected):
    spec = ARCHITECTURES[architecture]
    shape = (None, 32, 32, 1) if spec.study_level else (32, 32, 1)
    model = build_model(architecture, input_shape=shape)
    names = gradcam_layers(model, architecture)
    assert names == expected
    for name in names:
        assert len(model.get_layer(name).output.shape) == 4
    assert model.get_layer(embedding_layer(architecture)).output.shape[0] is None


def test_gradcam_layers_refuse_a_model_of_another_architecture():
    model = build_model("custom_cnn", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="Grad-CAM"):
        gradcam_layers(model, "mobilenet_v2")


def test_weights_file_round_trip_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(3)
    model = build_model("custom_cnn", input_shape=(32, 32, 1))
    path = tmp_path / "cnn.weights.h5"
    model.save_weights(path)
    keras.utils.set_random_seed(4)
    again = build_model("custom_cnn", input_shape=(32, 32, 1), weights_path=path)
    x, _ = _tiny_batch()
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), again.predict(x, verbose=0)
    )


def test_weights_of_another_shape_are_refused_with_the_shapes(tmp_path):
    path = tmp_path / "cnn.weights.h5"
    build_model("custom_cnn", input_shape=(32, 32, 1)).save_weights(path)
    with pytest.raises(ValueError, match=r"does not fit.*\(3, 3, 1, 32\)"):
        build_model("custom_cnn", input_shape=(32, 32, 3), weights_path=path)
    with pytest.raises(ValueError, match="does not fit"):
        build_model(
            "custom_cnn", input_shape=(32, 32, 1), task="type", weights_path=path
        )


def test_backbone_weights_file_loads_into_its_backbone(tmp_path):
    keras.utils.set_random_seed(5)
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    path = tmp_path / "mobilenet_notop.weights.h5"
    backbone.save_weights(path)
    model = build_model("mobilenet_v2", input_shape=(32, 32, 1), weights_path=path)
    np.testing.assert_array_equal(
        model.get_layer("Conv1").get_weights()[0],
        backbone.get_layer("Conv1").get_weights()[0],
    )


def test_missing_or_foreign_weights_files_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build_model("custom_cnn", input_shape=(32, 32, 1), weights_path=tmp_path / "x")
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="must end with"):
        build_model("custom_cnn", input_shape=(32, 32, 1), weights_path=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "alexnet", "input_shape": (32, 32, 1)}, "unknown arch"),
        ({"architecture": "custom_cnn", "input_shape": (32, 32, 2)}, "channels"),
        ({"architecture": "custom_cnn", "input_shape": (4, 32, 32, 1)}, r"\(H, W, C\)"),
        ({"architecture": "cnn_lstm", "input_shape": (32, 32, 1)}, r"\(D, H, W, C\)"),
        ({"architecture": "mobilenet_v2", "input_shape": (16, 16, 1)}, ">= 32"),
        (
            {"architecture": "custom_cnn", "input_shape": (32, 32, 1), "task": "x"},
            "task",
        ),
        (
            {"architecture": "custom_cnn", "input_shape": (32, 32, 1), "depth": 3},
            "depth",
        ),
        (
            {"architecture": "cnn_lstm", "input_shape": (None, 32, 32, 1), "rnn": "x"},
            "rnn",
        ),
    ],
)
def test_build_model_rejects_bad_requests_precisely(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


@pytest.mark.parametrize("kind", ["svm", "rf"])
def test_classical_head_round_trips_through_joblib(tmp_path, kind):
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    embeddings = rng.normal(size=(40, 8)) + labels[:, None] * 3.0
    head = classical_head_fit(kind=kind, embeddings=embeddings, labels=labels)
    classical_head_save(head, folder=tmp_path)
    loaded = classical_head_load(folder=tmp_path)
    probs = classical_head_predict(loaded, embeddings=embeddings)
    assert probs.shape == (40, 2)
    assert (probs.argmax(axis=1) == labels).mean() > 0.9


def test_model_load_round_trips_a_study_model_with_its_custom_layers(tmp_path):
    from ml.models import model_load

    model = build_model("cnn_lstm", input_shape=(None, 32, 32, 1))
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).random((1, 5, 32, 32, 1), dtype=np.float32)
    again = model_load(tmp_path / "model.keras")
    np.testing.assert_allclose(
        again.predict(x, verbose=0)["slices"], model.predict(x, verbose=0)["slices"]
    )


def test_importing_ml_models_does_not_load_keras():
    import subprocess
    import sys

    code = "import sys, ml.models; print('keras' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
