"""End to end with a real model: a tiny Keras CNN saved as a model folder, registered
and activated, runs on a synthetic DICOM series through the Celery task — no stub."""

import pytest

from diagnosis import ml_adapter, services, storage
from diagnosis.models import StudyStatus
from diagnosis.tasks import study_process_task
from feedback.services import model_version_activate, model_version_register

from .conftest import uploads_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    keras = pytest.importorskip("keras")
    from ml.modelfile import ModelCard, model_card_save
    from ml.models import build_model
    from ml.preprocess import PreprocessConfig

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model")
    model = build_model("custom_cnn", input_shape=(64, 64, 1), task="binary")
    model.save(folder / "model.keras")
    card = ModelCard(
        name="tiny-test-cnn",
        version="0.1",
        architecture="custom_cnn",
        task="binary",
        classes=["normal", "stroke"],
        modality="CT",
        input_shape=[64, 64, 1],
        preprocessing=PreprocessConfig(size=64).to_dict(),
        threshold=0.5,
        demo=True,
    )
    model_card_save(card, folder)
    return folder


@pytest.fixture
def real_model(db, tiny_model_dir):
    ml_adapter._loaded.clear()
    version = model_version_register(path=tiny_model_dir)
    return model_version_activate(version=version)


def test_real_model_processes_a_dicom_series_through_the_task(
    real_model, clinician, series_dir, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    study = services.study_create(user=clinician, files=uploads_of(series_dir)).study
    outcome = study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert outcome.result == "done", study.error_message
    assert study.status == StudyStatus.READY
    result = study.current_result
    assert result.model_version == real_model
    assert result.label in ("normal", "stroke")
    assert 0.0 <= result.probability <= 1.0 and 0.5 <= result.confidence <= 1.0
    probabilities = list(study.slices.values_list("probability", flat=True))
    assert len(probabilities) == 8 and all(0.0 <= p <= 1.0 for p in probabilities)
    heatmaps = study.slices.exclude(heatmap_name="")
    assert heatmaps.count() == 3
    assert sorted(heatmaps.values_list("index", flat=True)) == sorted(
        result.suspicious_slices[:3]
    )
    for item in heatmaps:
        png = storage.heatmap_path(study.pk, item.heatmap_name).read_bytes()
        assert png[:4] == b"\x89PNG"
    assert "predict" in " ".join(result.timings) or result.timings


def test_tampered_model_fails_the_study_with_a_reason(
    real_model, clinician, series_dir, tiny_model_dir, monkeypatch, tmp_path
):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "model.keras").write_bytes(b"not the weights")
    real_model.path = str(copy)
    real_model.sha256 = "f" * 64  # a different version as far as the worker knows
    real_model.save()
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    study = services.study_create(user=clinician, files=uploads_of(series_dir)).study
    study_process_task.apply(args=[study.pk])
    study.refresh_from_db()
    assert study.status == StudyStatus.FAILED
    assert "sha256" in study.error_message
