"""Fixtures for feedback tests: folders under a temporary DATA_DIR, ready studies
made through the real pipeline with the model stubbed at diagnosis's adapter, a
small synthetic training set, and model versions with evaluations on a data set."""

import pytest
from django.test import Client

from diagnosis import services as study_services
from diagnosis.tasks import study_process_task
from diagnosis.tests.conftest import (  # noqa: F401 - fixtures used by these tests
    active_model,
    fake_analysis,
    series_dir,
    stub_analysis,
    uploads_of,
)
from feedback.models import (
    DatasetStatus,
    ModelEvaluation,
    ModelSource,
    ModelStatus,
    ModelVersion,
    TrainingDataset,
)


@pytest.fixture(autouse=True)
def data_dirs(settings, tmp_path):
    settings.FILES_ROOT = tmp_path / "files"
    settings.MODELS_DIR = tmp_path / "models"
    settings.DATASETS_DIR = tmp_path / "datasets"
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    settings.TRAINING_DATA_DIRS = [tmp_path / "training-data"]
    (tmp_path / "training-data").mkdir()
    return tmp_path


@pytest.fixture
def radiologist2(db):
    from accounts.tests.factories import UserFactory

    return UserFactory(username="rita-radiologist", role="radiologist")


@pytest.fixture
def as_radiologist2(radiologist2):
    client = Client()
    client.force_login(radiologist2)
    return client


@pytest.fixture
def make_ready_study(clinician, request, monkeypatch):
    """A study processed through the real task (model stubbed), ready for review."""
    request.getfixturevalue("active_model")
    series = request.getfixturevalue("series_dir")
    stub = request.getfixturevalue("stub_analysis")
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)
    counter = iter(range(1000))

    def make(label="stroke", probability=0.91):
        stub.next = fake_analysis(label=label, probability=probability)
        # A note file set aside by the upload makes each call a new upload.
        files = unique_uploads(series, f"study {next(counter)}")
        study = study_services.study_create(user=clinician, files=files).study
        study_process_task.apply(args=[study.pk])
        study.refresh_from_db()
        assert study.status == "ready", study.error_message
        return study

    return make


def unique_uploads(folder, tag):
    files = uploads_of(folder)
    files.append(files[0].__class__(f"note-{tag}.txt", tag.encode()))
    return files


@pytest.fixture
def ready_dataset(db, admin):
    return TrainingDataset.objects.create(
        name="phantoms",
        root="/nonexistent",
        status=DatasetStatus.READY,
        test_fingerprint="f" * 64,
        created_by=admin,
    )


def study_report(auc, sensitivity, specificity=0.8, studies=40):
    ci = {"auc": [auc - 0.1, auc + 0.05], "sensitivity": [sensitivity - 0.2, 1.0]}
    ci["specificity"] = [specificity - 0.2, 1.0]
    return {
        "study": {
            "auc": auc,
            "sensitivity": sensitivity,
            "specificity": specificity,
            "ci95": ci,
            "confusion_matrix": [[4, 1], [1, 4]],
        },
        "slice": {"auc": auc},
        "studies": studies,
    }


@pytest.fixture
def make_version(db):
    counter = iter(range(1, 1000))

    def make(
        *,
        status=ModelStatus.CANDIDATE,
        dataset=None,
        auc=None,
        sens=None,
        spec=0.8,
        studies=40,
    ):
        n = next(counter)
        version = ModelVersion.objects.create(
            name="cnn",
            version=str(n),
            architecture="custom_cnn",
            task="binary",
            classes=["normal", "stroke"],
            modality="CT",
            path=f"/nonexistent/{n}",
            sha256=f"{n:064d}",
            status=status,
            source=ModelSource.TRAINING,
        )
        if dataset is not None and auc is not None:
            ModelEvaluation.objects.create(
                model_version=version,
                dataset=dataset,
                test_fingerprint=dataset.test_fingerprint,
                report=study_report(auc, sens, spec, studies),
                roc={"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1]},
            )
        return version

    return make
