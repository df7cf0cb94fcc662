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
    assert dataset.synthetic and 'data-testid="synthetic"' in page.text


def test_images_not_made_by_the_portal_are_not_called_synthetic(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks
):
    (phantom_folder / "labels.csv").unlink()
    with django_capture_on_commit_callbacks(execute=True):
        register(as_admin, phantom_folder)
    dataset = TrainingDataset.objects.get()
    assert dataset.status == DatasetStatus.READY and not dataset.synthetic
    page = as_admin.get(reverse("feedback:dataset-detail", args=[dataset.pk]))
    assert 'data-testid="synthetic"' not in page.text


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


# --- data sets uploaded as a zip ------------------------------------------------------
def zip_of(folder, top="brain-ct", extra=None):
    """The folder zipped as a user would (inside one top folder, with macOS
    clutter), as an upload."""
    import io
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder)}")
        zf.writestr(f"__MACOSX/{top}/._x.png", b"resource fork")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return SimpleUploadedFile("brain-ct.zip", buffer.getvalue(), "application/zip")


def upload(client, archive, **extra):
    return client.post(
        reverse("feedback:dataset-list"),
        {"name": "uploaded", "archive": archive, "test_fraction": 0.25, "seed": 0}
        | extra,
    )


def test_an_uploaded_zip_is_unpacked_indexed_and_split(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(as_admin, zip_of(phantom_folder))
    assert response.status_code == 302
    dataset = TrainingDataset.objects.get()
    assert dataset.status == DatasetStatus.READY, dataset.error_message
    assert dataset.images == 48 and dataset.groups == 12
    assert dataset.root.startswith(str(settings.DATASETS_DIR))
    assert dataset.root.endswith("brain-ct")  # indexed below the zip's top folder
    assert not dataset_services.archive_path(dataset).exists()  # no second copy
    page = as_admin.get(reverse("feedback:dataset-detail", args=[dataset.pk]))
    assert "brain-ct.zip" in page.text and "never used for training" in page.text
    listing = as_admin.get(reverse("feedback:dataset-list"))
    assert "zip <code>brain-ct.zip</code>" in listing.text


def test_a_zip_with_a_path_trick_is_refused_whole_and_nothing_is_kept(
    as_admin, phantom_folder, settings
):
    archive = zip_of(phantom_folder, extra={"../outside.png": b"x"})
    response = upload(as_admin, archive)
    assert response.status_code == 400
    assert "brain-ct.zip cannot be used" in response.text
    assert "../outside.png" in response.text and "unsafe path" in response.text
    assert not TrainingDataset.objects.exists()
    assert not list(settings.DATASETS_DIR.glob("*/*"))  # no zip left behind


def test_a_file_that_is_not_a_zip_is_refused_by_name(as_admin, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = upload(as_admin, SimpleUploadedFile("brain-ct.zip", b"not a zip"))
    assert response.status_code == 400
    assert "not a readable zip archive" in response.text
    assert not TrainingDataset.objects.exists()


def test_a_zip_larger_than_the_limits_is_refused(as_admin, phantom_folder, settings):
    settings.DATASET_UNPACKED_MAX_BYTES = 1000
    response = upload(as_admin, zip_of(phantom_folder))
    assert response.status_code == 400 and "would expand to" in response.text
    settings.DATASET_UPLOAD_MAX_BYTES = 100
    response = upload(as_admin, zip_of(phantom_folder))
    assert response.status_code == 400 and "larger than" in response.text
    assert not TrainingDataset.objects.exists()


def test_folder_and_zip_together_or_neither_is_refused(as_admin, phantom_folder):
    both = upload(as_admin, zip_of(phantom_folder), root=str(phantom_folder))
    neither = register(as_admin, "")
    for response in (both, neither):
        assert response.status_code == 400
        assert "either a folder on the server or a zip file" in response.text
    assert not TrainingDataset.objects.exists()


def test_a_zip_without_class_folders_fails_with_a_reason_and_frees_the_disk(
    as_admin, index_now, django_capture_on_commit_callbacks, tmp_path
):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "scan.txt").write_text("no images here")
    with django_capture_on_commit_callbacks(execute=True):
        upload(as_admin, zip_of(loose))
    dataset = TrainingDataset.objects.get()
    assert dataset.status == DatasetStatus.FAILED
    page = as_admin.get(reverse("feedback:dataset-detail", args=[dataset.pk]))
    assert "no labelled images" in page.text
    assert not dataset_services.dataset_dir(dataset).exists()


def test_only_admins_may_upload_a_data_set(as_radiologist, phantom_folder):
    response = upload(as_radiologist, zip_of(phantom_folder))
    assert response.status_code == 403
    assert not TrainingDataset.objects.exists()


def test_the_same_folder_cannot_be_registered_twice(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        register(as_admin, phantom_folder)
    again = register(as_admin, phantom_folder, name="phantoms again")
    assert again.status_code == 400
    assert "is registered already, as data set phantoms" in again.text
    assert TrainingDataset.objects.count() == 1


def test_the_page_shows_the_locked_split_by_label_and_warns_of_overlap(
    as_admin, phantom_folder, index_now, django_capture_on_commit_callbacks
):
    """The same images registered again as a zip: each data set's training pool
    holds the other's locked test images, and the page says so."""
    with django_capture_on_commit_callbacks(execute=True):
        register(as_admin, phantom_folder)
        upload(as_admin, zip_of(phantom_folder), seed=3)
    zipped = TrainingDataset.objects.order_by("pk").last()
    assert zipped.status == DatasetStatus.READY, zipped.error_message
    page = as_admin.get(reverse("feedback:dataset-detail", args=[zipped.pk]))
    assert 'data-testid="dataset-warnings"' in page.text
    assert "of this locked test split are in the training pool of phantoms" in (
        page.text
    )
    locked = dataset_services.dataset_test_rows(dataset=zipped)
    normal = [r for r in locked if r.label == "normal"]
    scans = len({r.group for r in normal})
    assert "<td>normal</td>" in page.text
    assert f"<td>{len(normal)} / {scans}</td>" in page.text
