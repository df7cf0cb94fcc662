"""Training data sets: a server folder indexed once, with a locked test split that
training never sees; confirmed feedback exported with the study as its group."""

import pytest
from django.urls import reverse

from feedback.models import CaseStatus, DatasetStatus, FeedbackCase, TrainingDataset
from feedback.services import datasets as dataset_services
from ml.datasets import read_manifest
from ml.synthetic import synthesize_dataset


@pytest.fixture
def phantom_folder(data_dirs):
    folder = data_dirs / "training-data" / "phantoms"
    synthesize_dataset(
        folder, studies=12, seed=1, size=48, slices=4, fmt="png", masks="none"
    )
    return folder


@pytest.fixture
def index_now(monkeypatch):
    from feedback.tasks import dataset_index_task

    monkeypatch.setattr(
        "feedback.tasks.dataset_index_task.delay",
        lambda pk: dataset_index_task.apply(args=[pk]),
    )


def register(client, folder, **extra):
    return client.post(
        reverse("feedback:dataset-list"),
        {"name": "phantoms", "root": str(folder), "test_fraction": 0.25, "seed": 0}
        | extra,
    )


def test_register_indexes_and_locks_a_grouped_test_split(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(as_admin, phantom_folder)
    dataset = TrainingDataset.objects.get()
    assert response.status_code == 302
    assert dataset.status == DatasetStatus.READY, dataset.error_message
    assert dataset.images == 48 and dataset.groups == 12
    pool = read_manifest(dataset_services.pool_manifest_path(dataset))
    test = read_manifest(dataset_services.test_manifest_path(dataset))
    assert len(pool) + len(test) == 48
    test_groups = {r.split_group for r in test}
    assert test_groups == set(dataset.locked_test_groups)
    assert not test_groups & {r.split_group for r in pool}
    assert {r.label for r in test} >= {"normal"} and len({r.label for r in test}) > 1
    page = as_admin.get(reverse("feedback:dataset-detail", args=[dataset.pk]))
    assert "never used for training" in page.text


def test_locked_split_does_not_move_when_indexed_again(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        register(as_admin, phantom_folder)
    dataset = TrainingDataset.objects.get()
    before = list(dataset.locked_test_groups)
    assert dataset_services.dataset_index(dataset_id=dataset.pk) == "ready"
    dataset.refresh_from_db()
    assert dataset.locked_test_groups == before


def test_folder_outside_the_allowed_roots_is_refused(as_admin, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    response = register(as_admin, elsewhere)
    assert response.status_code == 400
    assert "TRAINING_DATA_DIRS" in response.text
    assert not TrainingDataset.objects.exists()


def test_a_folder_without_both_labels_fails_with_a_reason(
    as_admin, data_dirs, index_now, django_capture_on_commit_callbacks
):
    folder = data_dirs / "training-data" / "one-label"
    synthesize_dataset(folder, studies=3, seed=2, size=48, slices=2, fmt="png")
    for sub in ("ischemic", "hemorrhagic"):
        for path in sorted((folder / sub).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (folder / sub).rmdir()
    with django_capture_on_commit_callbacks(execute=True):
        register(as_admin, folder)
    dataset = TrainingDataset.objects.get()
    assert dataset.status == DatasetStatus.FAILED
    assert "stroke and normal" in dataset.error_message


def test_confirmed_feedback_is_exported_with_its_study_as_group(
    make_ready_study, as_radiologist, as_admin, data_dirs
):
    study = make_ready_study(label="stroke")
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[study.pk]), {"final_label": "normal"}
    )
    case = FeedbackCase.objects.get()
    as_admin.post(reverse("feedback:case-confirm", args=[case.pk]))
    case.refresh_from_db()
    assert case.status == CaseStatus.CONFIRMED
    out = data_dirs / "export"
    rows = dataset_services.feedback_export(cases=[case], out_dir=out)
    assert len(rows) == study.slice_count
    assert {r.group for r in rows} == {f"feedback study {study.pk}"}
    assert {r.label for r in rows} == {"normal"}
    assert all((out / r.path).is_file() for r in rows)
