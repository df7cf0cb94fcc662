"""A data set's locked test images must never come back as training feedback: a
locked scan uploaded as a study, read, flagged and confirmed is kept out of the
retraining job (as a byte copy and as a re-encoded, resized near duplicate), and the
job log and the feedback queue say why. Training is stubbed at the ml adapter; the
data set is indexed, and the feedback exported and hashed, for real."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import services as study_services
from diagnosis.tasks import study_process_task
from diagnosis.tests.conftest import fake_analysis
from feedback import ml_adapter
from feedback.models import FeedbackCase, RetrainingJob, TrainingDataset
from feedback.services import datasets as dataset_services
from feedback.tasks import dataset_index_task, retrain_task
from ml.synthetic import synthesize_dataset

LOCKED = "locked-phantoms"


@pytest.fixture
def dataset(as_admin, data_dirs, monkeypatch, django_capture_on_commit_callbacks):
    """Twelve 6-slice phantom scans as PNG, registered and indexed through the page."""
    monkeypatch.setattr(
        "feedback.tasks.dataset_index_task.delay",
        lambda pk: dataset_index_task.apply(args=[pk]),
    )
    folder = data_dirs / "training-data" / LOCKED
    synthesize_dataset(folder, studies=12, seed=2, size=64, slices=6, fmt="png")
    with django_capture_on_commit_callbacks(execute=True):
        as_admin.post(
            reverse("feedback:dataset-list"),
            {"name": LOCKED, "root": str(folder), "test_fraction": 0.34, "seed": 0},
        )
    dataset = TrainingDataset.objects.get(name=LOCKED)
    assert dataset.status == "ready", dataset.error_message
    return dataset


def locked_scans(dataset) -> dict[str, list]:
    """Locked split group -> its image files, in slice order."""
    scans = {}
    for row in dataset_services.dataset_test_rows(dataset=dataset):
        scans.setdefault(row.group, []).append(Path(dataset.root) / row.path)
    return {group: sorted(paths) for group, paths in sorted(scans.items())}


def exact_copies(paths) -> list:
    return [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]


def resized_jpegs(paths) -> list:
    """Each slice shrunk from 64 to 60 px and saved as JPEG: other bytes, same image."""
    files = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(image, (60, 60), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        files.append(SimpleUploadedFile(f"{path.stem}.jpg", data.tobytes()))
    return files


@pytest.fixture
def confirmed_case(
    clinician, as_radiologist, as_radiologist2, stub_analysis, monkeypatch, request
):
    """A study uploaded by the clinician, read by a radiologist who agrees with the
    AI and flags it as a hard case, confirmed by a second radiologist."""
    request.getfixturevalue("active_model")
    monkeypatch.setattr("diagnosis.tasks.study_process_task.delay", lambda pk: None)

    def make(files):
        stub_analysis.next = fake_analysis(label="stroke", slices=len(files))
        study = study_services.study_create(user=clinician, files=files).study
        study_process_task.apply(args=[study.pk])
        study.refresh_from_db()
        assert study.status == "ready", study.error_message
        as_radiologist.post(
            reverse("diagnosis:study-review", args=[study.pk]),
            {"final_label": "stroke", "stroke_type": "hemorrhagic", "agree": "1"},
        )
        as_radiologist.post(
            reverse("feedback:case-flag"), {"study": study.pk, "note": "subtle"}
        )
        case = FeedbackCase.objects.get(study=study)
        as_radiologist2.post(reverse("feedback:case-confirm", args=[case.pk]))
        case.refresh_from_db()
        assert case.status == "confirmed"
        return case

    return make


@pytest.fixture
def trained_rows(monkeypatch):
    """The rows the training worker is handed (the stub trains nothing)."""
    seen = []

    def train(*, rows, **kwargs):
        seen.extend(rows)
        return ml_adapter.TrainOutcome(None, True, 0.0, 0.0)

    monkeypatch.setattr(ml_adapter, "train", train)
    return seen


def run_job(as_admin, dataset, monkeypatch):
    monkeypatch.setattr("feedback.tasks.retrain_task.delay", lambda pk: None)
    as_admin.post(
        reverse("feedback:job-list"),
        {
            "dataset": dataset.pk,
            "architecture": "custom_cnn",
            "task": "binary",
            "epochs": 1,
            "seed": 0,
            "image_size": 64,
            "include_feedback": "on",
        },
    )
    job = RetrainingJob.objects.get()
    retrain_task.apply(args=[job.pk])
    job.refresh_from_db()
    return job


def test_locked_test_images_confirmed_as_feedback_are_kept_out_of_training(
    as_admin,
    dataset,
    confirmed_case,
    make_ready_study,
    as_radiologist,
    as_radiologist2,
    trained_rows,
    monkeypatch,
):
    scans = list(locked_scans(dataset).values())
    copied = confirmed_case(exact_copies(scans[0]))
    resized = confirmed_case(resized_jpegs(scans[1]))
    clean_study = make_ready_study()  # the DICOM phantom: in no data set
    as_radiologist.post(
        reverse("diagnosis:study-review", args=[clean_study.pk]),
        {"final_label": "normal"},
    )
    clean = FeedbackCase.objects.get(study=clean_study)
    as_radiologist2.post(reverse("feedback:case-confirm", args=[clean.pk]))

    job = run_job(as_admin, dataset, monkeypatch)

    assert (
        "feedback: 2 case(s) kept out of training: their images are in the locked "
        f"test split of data set {LOCKED} (case {copied.pk}: 6 of 6 images; case "
        f"{resized.pk}: 6 of 6 images)" in job.log
    )
    assert "feedback: 8 images of 1 confirmed case(s)" in job.log
    groups = {row.group for row in trained_rows}
    assert f"feedback study {clean_study.pk}" in groups
    assert f"feedback study {copied.study_id}" not in groups
    assert f"feedback study {resized.study_id}" not in groups
    locked = {row.sha256 for row in dataset_services.dataset_test_rows(dataset=dataset)}
    assert not locked & {row.sha256 for row in trained_rows}
    assert list(job.feedback_cases.all()) == [clean]  # what the job learnt from
    page = as_admin.get(reverse("feedback:job-detail", args=[job.pk]))
    assert "1 confirmed feedback case(s)" in page.text

    queue = as_radiologist.get(reverse("feedback:case-list"), {"status": "confirmed"})
    for case, kind in ((copied, "exact copies"), (resized, "near duplicates")):
        cell = queue.text.split(f'data-testid="kept-out-{case.pk}"')[1]
        cell = cell.split("</td>")[0]
        assert "kept out of training (locked test image)" in cell
        assert (
            f"6 of its 6 images are in the locked test split of data set {LOCKED}"
            in cell
        )
        assert f"({kind})" in cell
    assert f'data-testid="kept-out-{clean.pk}"' not in queue.text


def test_a_near_duplicate_needs_the_pixels_to_agree_not_only_the_hash(dataset):
    """Head-CT slices of different patients often share a perceptual hash (the
    outline of the head): as for the indexer, the thumbnails must agree too."""
    rows = dataset_services.dataset_test_rows(dataset=dataset)
    root = Path(dataset.root)
    locked = ml_adapter.image_hash(root / rows[0].path)
    assert ml_adapter.locked_copies([locked], rows, root) == (1, 0)
    look_alike = ml_adapter.ImageHash("0" * 64, locked.phash, locked.thumb)
    assert ml_adapter.locked_copies([look_alike], rows, root) == (0, 1)
    gradient = np.arange(32 * 32, dtype=np.uint8).tobytes()
    other_patient = ml_adapter.ImageHash("0" * 64, locked.phash, gradient)
    assert ml_adapter.locked_copies([other_patient], rows, root) == (0, 0)
