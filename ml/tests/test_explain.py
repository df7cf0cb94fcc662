"""ml.explain: Grad-CAM for every architecture, on the lesion, model left untouched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml import synthetic
from ml.explain import GradCam
from ml.io import LoadResult, SliceInfo, StudyMetadata
from ml.preprocess import PreprocessConfig, preprocess_volume

SIZE = 64
SLICES = 12
LESION_LEVELS = range(3, 10)  # slice indices where the phantoms' lesions lie
#: Measured on this machine: 0.96 of 163 lesion slices (see the test's docstring).
LOCALISATION_FLOOR = 0.85


def model_fingerprint(model) -> dict:
    """Everything Grad-CAM must leave as it found it."""
    return {
        "weights": [np.array(w) for w in model.get_weights()],
        "trainable": [layer.trainable for layer in model.layers],
        "layers": [layer.name for layer in model.layers],
        "outputs": [t.name for t in model.outputs],
        "layer_count": len(model.layers),
    }


def assert_same_model(before: dict, after: dict) -> None:
    assert after["layers"] == before["layers"]
    assert after["trainable"] == before["trainable"]
    assert after["outputs"] == before["outputs"]
    assert all(
        np.array_equal(a, b)
        for a, b in zip(before["weights"], after["weights"], strict=True)
    )


@pytest.mark.parametrize(
    "architecture",
    [
        "custom_cnn",
        "mobilenet_v2",
        "resnet50",
        "vgg16",
        "resnet_mobilenet_fusion",
        "cnn_lstm",
    ],
)
def test_grad_cam_gives_unit_maps_and_leaves_the_model_as_it_was(architecture):
    from ml.models import build_model, gradcam_layers

    study = architecture == "cnn_lstm"
    shape = (None, SIZE, SIZE, 1) if study else (SIZE, SIZE, 1)
    model = build_model(architecture, input_shape=shape)
    model.get_layer(gradcam_layers(model, architecture)[0]).trainable = False
    images = np.random.default_rng(0).random((3, SIZE, SIZE, 1), np.float32)
    probe = images[None] if study else images
    reference = np.asarray(_first_output(model(probe, training=False)))
    before = model_fingerprint(model)

    explainer = GradCam(model=model, layers=gradcam_layers(model, architecture))
    maps = explainer(images, slices=[0, 2]) if study else explainer(images)

    assert maps.shape == ((2, SIZE, SIZE) if study else (3, SIZE, SIZE))
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert_same_model(before, model_fingerprint(model))
    after = np.asarray(_first_output(model(probe, training=False)))
    assert np.array_equal(reference, after)


def _first_output(outputs):
    return outputs["study"] if isinstance(outputs, dict) else outputs


def test_grad_cam_refuses_unknown_layers_and_bad_input():
    from ml.models import build_model

    model = build_model("custom_cnn", input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="no layer 'nope'"):
        GradCam(model=model, layers=["nope"])
    explainer = GradCam(model=model, layers=["conv4"])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        explainer(np.zeros((32, 32, 1), np.float32))
    with pytest.raises(ValueError, match="class_index 5"):
        explainer(np.zeros((1, 32, 32, 1), np.float32), class_index=5)


# --- localisation on phantoms ---------------------------------------------------------

# No head crop here: with the per-slice crop the same training gave peaks on the
# lesion for only 0.71 of the slices (0.66 measured on the input grid, so not a
# mapping error): the crop rescales every slice differently. Crop + letterbox
# inversion is tested in test_inference.py.
CONFIG = PreprocessConfig(window="stroke", size=SIZE, crop=False)


def _slices(seeds, labels):
    """Model input of the lesion-level slices of phantoms: x, y (lesion on slice)."""
    xs, ys = [], []
    for i, seed in enumerate(seeds):
        phantom = synthetic.make_phantom(
            label=labels[i % len(labels)], size=SIZE, slices=SLICES, seed=seed
        )
        x = preprocess_volume(phantom.volume_hu, units="HU", config=CONFIG)
        for k in LESION_LEVELS:
            area = int(phantom.mask[k].sum())
            if 0 < area < 4:
                continue  # a lesion too small to call either way
            xs.append(x[k])
            ys.append(int(area >= 4))
    return np.stack(xs), np.array(ys)


def _small_cnn():
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="cam")(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def phantom_model_folder(tmp_path_factory):
    """A small CNN trained to tell infarct slices from normal ones (~25 s on 2 cores).

    Only slices from the levels where lesions occur are used, for both classes:
    with every level, the network learns "mid-brain level = stroke" instead of the
    lesion, and its heatmaps point at the ventricles.
    """
    import keras

    from ml.tests.test_inference import save_model_folder

    keras.utils.set_random_seed(0)
    x, y = _slices(range(1000, 1120), ["normal", "ischemic"])
    model = _small_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy"
    )
    weights = {0: 1.0, 1: float((y == 0).sum() / max(1, (y == 1).sum()))}
    model.fit(x, y, epochs=12, batch_size=32, verbose=0, class_weight=weights)
    return save_model_folder(
        model,
        tmp_path_factory.mktemp("phantom") / "m",
        architecture="small_cnn",
        preprocessing=CONFIG.to_dict(),
        extra={"gradcam_layers": ["cam"]},
    )


@pytest.mark.slow
def test_grad_cam_peak_lies_on_the_lesion(phantom_model_folder):
    """On held-out infarct phantoms, the heatmap's peak (mapped back onto the
    original 64-px slice) falls inside the lesion mask dilated by 2 px for 0.96 of
    163 lesion slices of 30 phantoms (measured on this machine); the floor leaves
    room for other CPUs' arithmetic. Through Predictor.explain, in the geometry the
    viewer shows."""
    from ml.inference import Predictor

    predictor = Predictor.load(phantom_model_folder)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    hits = []
    for seed in range(5000, 5030):
        phantom = synthetic.make_phantom(
            label="ischemic", size=SIZE, slices=SLICES, seed=seed
        )
        wanted = [k for k in LESION_LEVELS if phantom.mask[k].sum() >= 4]
        study = LoadResult(
            volume=phantom.volume_hu,
            slices=[SliceInfo(source=str(k)) for k in range(SLICES)],
            metadata=StudyMetadata(source_kind="test", units="HU", modality="CT"),
        )
        maps = predictor.explain(study, slices=wanted)
        for k in wanted:
            assert maps[k].shape == (SIZE, SIZE)
            peak = np.unravel_index(np.argmax(maps[k]), maps[k].shape)
            lesion = cv2.dilate(phantom.mask[k].astype(np.uint8), kernel)
            hits.append(bool(lesion[peak]))
    fraction = float(np.mean(hits))
    assert len(hits) >= 50
    assert fraction >= LOCALISATION_FLOOR, f"peak on the lesion for {fraction:.2f}"
