"""Model cards: validated on load, files checked by sha256, archives unpacked safely."""

import json
import zipfile

import pytest

from ml.modelfile import (
    ModelCard,
    ModelFileError,
    model_archive_pack,
    model_archive_unpack,
    model_card_load,
    model_card_save,
    model_files_verify,
)


def make_model(folder, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(b"weights-v1" * 100)
    card = ModelCard(
        name="tiny",
        version="1",
        architecture="custom_cnn",
        task="binary",
        classes=["normal", "stroke"],
        modality="CT",
        input_shape=[64, 64, 1],
        preprocessing={"window": "brain", "size": 64},
        threshold=0.3,
        **overrides,
    )
    model_card_save(card, folder)
    return card


def test_saved_card_round_trips_with_file_hashes(tmp_path):
    card = make_model(tmp_path / "m")
    loaded = model_card_load(tmp_path / "m")
    assert loaded == card
    assert (
        set(loaded.files) == {"model.keras"} and len(loaded.files["model.keras"]) == 64
    )
    model_files_verify(tmp_path / "m", loaded)


def test_tampered_weights_are_refused(tmp_path):
    make_model(tmp_path / "m")
    (tmp_path / "m" / "model.keras").write_bytes(b"weights-v2" * 100)
    with pytest.raises(ModelFileError, match="does not match its sha256"):
        model_files_verify(tmp_path / "m", model_card_load(tmp_path / "m"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("task", "segmentation", "task 'segmentation'"),
        ("classes", ["stroke", "normal"], "do not match task"),
        ("modality", "PET", "modality 'PET'"),
        ("threshold", 1.5, "threshold 1.5"),
        ("input_shape", [64, 64, 4], "1 to 3 channels"),
    ],
)
def test_mismatched_card_is_refused_with_the_field_named(
    tmp_path, field, value, message
):
    make_model(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=message):
        model_card_load(tmp_path / "m")


def test_folder_without_card_or_with_bad_json_is_explained(tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        model_card_load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        model_card_load(tmp_path)


def test_archive_round_trip_and_unsafe_member(tmp_path):
    make_model(tmp_path / "m")
    archive = model_archive_pack(tmp_path / "m", tmp_path / "m.zip")
    out = model_archive_unpack(archive, tmp_path / "out")
    assert model_card_load(out).name == "tiny"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../model.json", "{}")
    with pytest.raises(ModelFileError, match="not a plain file name"):
        model_archive_unpack(evil, tmp_path / "out2")
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a zip archive"):
        model_archive_unpack(tmp_path / "plain.zip", tmp_path / "out3")
