"""PDF report generation time per report, and the exports built beside it.

    .venv/bin/python bench/bench_reports.py [--runs 5] [--size 512] [--slices 32]

Seeds one reviewed study in a throw-away SQLite database (a synthetic 512-px head-CT
phantom with three heatmaps, as a worker leaves it), then times in this one process:
the first rendering (WeasyPrint import and font loading included), further
renderings of new states (what a worker does per ready or reviewed study), a download
of the kept report, the FHIR bundle and the DICOM zip. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_django(data_dir: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
        DJANGO_SECRET_KEY="bench-" + "k" * 50,
        DATA_DIR=data_dir,
        DATABASE_URL=f"sqlite:///{data_dir}/db.sqlite3",
        REDIS_URL="",
        CELERY_BROKER_URL="memory://",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed_study(size: int, slices: int):
    import cv2
    import numpy as np

    from accounts.models import Role, User
    from diagnosis import ml_adapter, storage
    from diagnosis.models import AIResult, Review, Slice, Study, StudyStatus
    from feedback.models import ModelVersion
    from ml.synthetic import make_phantom

    phantom = make_phantom(label="hemorrhagic", size=size, slices=slices, seed=7)
    clinician = User.objects.create(username="bench-clinician", role=Role.CLINICIAN)
    reader = User.objects.create(
        username="bench-reader", role=Role.RADIOLOGIST, first_name="Rita"
    )
    model = ModelVersion.objects.create(
        name="bench model", version="1", architecture="custom_cnn", task="binary",
        classes=["normal", "stroke"], path="/nonexistent", sha256="b" * 64,
    )  # fmt: skip
    study = Study.objects.create(
        uploaded_by=clinician, status=StudyStatus.READY, content_hash="c" * 64,
        source_kind="dicom", units="HU", modality="CT", slice_count=slices,
        patient_id="BENCH-1", patient_name="Bench, Patient", patient_age=70,
        patient_sex="M", study_instance_uid="1.2.826.0.1.3680043.8.498.1",
    )  # fmt: skip
    area = phantom.mask.sum(axis=(1, 2))
    probabilities = [float(0.05 + 0.9 * a / max(area.max(), 1)) for a in area]
    top = [int(i) for i in np.argsort(-area)[:3]]
    storage.study_dir(study.pk).joinpath("heatmaps").mkdir(parents=True)
    np.save(storage.volume_path(study.pk), phantom.volume_hu)
    for i in range(slices):
        name = ""
        if i in top:
            blurred = cv2.GaussianBlur(phantom.mask[i].astype(np.float32), (0, 0), 9)
            name = f"{i:04d}.png"
            storage.heatmap_path(study.pk, name).write_bytes(
                ml_adapter.heatmap_png(blurred / max(float(blurred.max()), 1e-6))
            )
        Slice.objects.create(
            study=study, index=i, source_name=f"IM{i}", probability=probabilities[i],
            heatmap_name=name,
        )  # fmt: skip
    result = AIResult.objects.create(
        study=study, model_version=model, label="stroke", stroke_type="hemorrhagic",
        probability=max(probabilities), confidence=max(probabilities), threshold=0.4,
        suspicious_slices=top,
    )  # fmt: skip
    Review.objects.create(
        study=study, ai_result=result, reviewer=reader, agrees_with_ai=True,
        final_label="stroke", stroke_type="hemorrhagic", impression="Acute bleed.",
    )  # fmt: skip
    return study


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as data_dir:
        setup_django(data_dir)
        from reports import fhir, services
        from reports.models import Report

        study = seed_study(args.size, args.slices)
        first, report = timed(lambda: services.report_get_or_render(study=study))
        warm = []
        for _ in range(args.runs):
            Report.objects.all().delete()  # a new state: render again
            seconds, report = timed(lambda: services.report_get_or_render(study=study))
            warm.append(seconds)
        cached, _ = timed(lambda: services.report_get_or_render(study=study))
        fhir_s, _ = timed(lambda: fhir.study_fhir_bundle(study=study).model_dump_json())
        dicom_s, (_, data) = timed(lambda: services.report_dicom_export(study=study))
        from pypdf import PdfReader

        pages = len(PdfReader(str(Path(data_dir) / "files" / "studies" / str(study.pk)
                                  / "reports" / report.file_name)).pages)  # fmt: skip
    shape = f"{args.slices} \u00d7 {args.size} \u00d7 {args.size}"
    print(f"| step ({shape} study, 3 heatmap key slices) | time |")
    print("|---|---:|")
    print(
        f"| first PDF in a fresh process (WeasyPrint import, fonts) | {first:.2f} s |"
    )
    print(
        f"| PDF per report, median of {args.runs} (min\u2013max) | "
        f"{statistics.median(warm):.2f} s ({min(warm):.2f}\u2013{max(warm):.2f}) |"
    )
    print(f"| PDF size, pages | {report.size / 1024:.0f} KiB, {pages} |")
    print(f"| download of the kept PDF (state unchanged) | {cached * 1000:.0f} ms |")
    print(f"| FHIR bundle | {fhir_s * 1000:.0f} ms |")
    print(f"| DICOM zip (Encapsulated PDF + 3 SC, {len(data) / 1024:.0f} KiB) | "
          f"{dicom_s:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
