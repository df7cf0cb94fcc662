"""Wall time and peak memory of a retraining job, and the time from promotion to the
first result made by the new version, through the portal's own services and tasks.

    .venv/bin/python bench/bench_retraining.py                      # synthetic set
        [--studies 60] [--slices 24] [--size 128] [--epochs 10] [--image-size 128]
    .venv/bin/python bench/bench_retraining.py --data ../shared/data/brain-stroke-ct

Runs in one process on a fresh SQLite database under a temporary DATA_DIR: registers
the folder as a data set (indexing and the locked test split), starts a job with the
default architecture through `retraining_job_start`, runs `retrain_task` as the
training worker would (`.apply()`), promotes the candidate, then analyses one
synthetic 30-slice DICOM study through `study_process_task` in the same process
(no restart) and times promotion → result. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def setup_django(data_dir: Path, data_root: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "stroke_portal.settings",
            "DJANGO_SECRET_KEY": "bench-" + "x" * 40,
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
            "CELERY_BROKER_URL": "memory://",
            "TRAINING_DATA_DIRS": str(data_root),
            "WARM_MODEL_ON_WORKER_START": "0",
            "ML_CACHE_DIR": str(data_dir / "ml-cache"),
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def synthetic_folder(root: Path, args) -> Path:
    from ml.synthetic import synthesize_dataset

    folder = root / "phantoms"
    synthesize_dataset(
        folder,
        studies=args.studies,
        seed=11,
        size=args.size,
        slices=args.slices,
        fmt="png",
        masks="none",
    )
    return folder


def run(args) -> dict:
    from accounts.models import User
    from diagnosis import services as study_services
    from diagnosis.tasks import study_process_task
    from feedback import services
    from feedback.models import RetrainingJob
    from feedback.tasks import retrain_task

    admin = User.objects.create(username="bench-admin", role="admin")
    started = time.perf_counter()
    dataset = services.dataset_register(
        name="bench", root=str(args.data), by=admin, test_fraction=0.2
    )
    services.dataset_index(dataset_id=dataset.pk)
    dataset.refresh_from_db()
    index_seconds = time.perf_counter() - started
    if dataset.status != "ready":
        raise SystemExit(f"indexing failed: {dataset.error_message}")
    job = services.retraining_job_start(
        dataset=dataset,
        by=admin,
        epochs=args.epochs,
        image_size=args.image_size,
        seed=0,
    )
    started = time.perf_counter()
    retrain_task.apply(args=[job.pk])
    wall = time.perf_counter() - started
    job = RetrainingJob.objects.get(pk=job.pk)
    if job.status != "succeeded":
        raise SystemExit(f"job {job.status}: {job.error_message}")
    candidate = job.candidate
    evaluation = candidate.evaluations.get(dataset=dataset)
    promote_to_result = _promote_then_analyse(
        candidate, admin, services, study_services, study_process_task
    )
    return {
        "data": str(args.data),
        "images": dataset.images,
        "scans": dataset.groups,
        "locked_test_scans": len(dataset.locked_test_groups),
        "architecture": job.architecture,
        "epochs_run": len(job.history),
        "image_size": job.image_size,
        "index_seconds": round(index_seconds, 1),
        "job_wall_seconds": round(wall, 1),
        "seconds_per_epoch": round(
            sum(h["seconds"] or 0 for h in job.history) / max(1, len(job.history)), 1
        ),
        "job_peak_rss_mb": job.peak_rss_mb,
        "process_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "locked_split_study_auc": evaluation.metric("auc"),
        "locked_split_sensitivity": evaluation.metric("sensitivity"),
        "locked_split_specificity": evaluation.metric("specificity"),
        "promotion_to_first_result_seconds": round(promote_to_result, 2),
    }


def _promote_then_analyse(candidate, admin, services, study_services, task) -> float:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.models import User
    from ml.synthetic import make_phantom, write_dicom_series

    folder = Path(tempfile.mkdtemp(prefix="bench-study-"))
    write_dicom_series(
        make_phantom(label="ischemic", size=512, slices=30, seed=5),
        folder,
        patient_id="BENCH-1",
    )
    uploads = [
        SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(folder.iterdir())
    ]
    clinician = User.objects.create(username="bench-clinician", role="clinician")
    started = time.perf_counter()
    services.model_version_promote(version=candidate, by=admin)
    study = study_services.study_create(user=clinician, files=uploads).study
    task.apply(args=[study.pk])
    study.refresh_from_db()
    if study.current_result is None or study.current_result.model_version != candidate:
        raise SystemExit(f"study not analysed by the candidate: {study.error_message}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="class folders; default: synthetic")
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-retraining-") as tmp:
        tmp_path = Path(tmp)
        if args.data is None:
            (tmp_path / "training-data").mkdir()
            args.data = synthetic_folder(tmp_path / "training-data", args)
        args.data = args.data.resolve()
        setup_django(tmp_path / "data", args.data.parent)
        print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
