"""Time of the upload request (``diagnosis.services.study_create``) on a large series:
validation from headers and a sample slice (now) against decoding every slice (the
request before), interleaved so that both see the same machine load.

    .venv/bin/python bench/bench_upload_request.py \
        --series ../shared/data/dicom-head-phantom/tilted-2.5mm
    .venv/bin/python bench/bench_upload_request.py --synthetic 500

``--synthetic N`` writes (once, under the temp folder's stroke-bench/) an N-slice
512 x 512 synthetic head-CT DICOM series with ``ml.synthetic``. The files are read
into memory first, as Django's upload handlers hand them over; each run then creates
the study on a throw-away SQLite database (new user, empty file store), so duplicate
detection never short-cuts it. "full read" swaps the adapter's check_upload for
read_upload (ml.io.load_study), which is what the request called before. ``peak_mb``
is the largest Python/NumPy allocation (tracemalloc) during one more run. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench_retraining import setup_django

CACHE = Path(tempfile.gettempdir()) / "stroke-bench"


def synthetic_series(slices: int) -> Path:
    folder = CACHE / f"upload-{slices}x512"
    if folder.exists() and len(list(folder.iterdir())) == slices:
        return folder
    from ml.synthetic import make_phantom, write_dicom_series

    shutil.rmtree(folder, ignore_errors=True)
    phantom = make_phantom(label="normal", size=512, slices=slices, seed=5)
    write_dicom_series(phantom, folder, patient_id=f"BENCH-{slices}")
    return folder


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def peak_mb(call) -> float:
    """Largest traced allocation during ``call`` (timed apart: tracing slows it)."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


class Uploads:
    """study_create on a fresh user and file store, set up outside the timing."""

    def __init__(self, folder: Path):
        from diagnosis import ml_adapter

        self.contents = [
            (p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()
        ]
        self.checks = {False: ml_adapter.check_upload, True: ml_adapter.read_upload}
        self.count = 0

    def prepare(self, *, full_read: bool):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from accounts.models import User
        from diagnosis import ml_adapter, services, storage

        shutil.rmtree(storage.uploads_root(), ignore_errors=True)
        self.count += 1
        user = User.objects.create(username=f"bench-{self.count}", role="clinician")
        files = [SimpleUploadedFile(name, data) for name, data in self.contents]

        def call():
            ml_adapter.check_upload = self.checks[full_read]
            try:
                self.last = services.study_create(user=user, files=files)
            finally:
                ml_adapter.check_upload = self.checks[False]

        return call


def run(folder: Path, repeats: int) -> dict:
    uploads = Uploads(folder)
    seconds: dict[str, list[float]] = {"headers": [], "full read": []}
    for _ in range(repeats):
        for variant in seconds:
            seconds[variant].append(
                timed(uploads.prepare(full_read=variant == "full read"))
            )
    study = uploads.last.study
    row = {
        "series": str(folder),
        "files": len(uploads.contents),
        "slices": study.slice_count,
        "set_aside": len(study.rejected_files),
    }
    for variant, values in seconds.items():
        key = variant.replace(" ", "_")
        row[f"{key}_seconds_median"] = round(statistics.median(values), 3)
        row[f"{key}_seconds_all"] = [round(s, 3) for s in values]
        full_read = variant == "full read"
        row[f"{key}_peak_mb"] = round(peak_mb(uploads.prepare(full_read=full_read)))
    return row | {"load_average": [round(v, 2) for v in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--series", type=Path, help="a folder of DICOM files")
    source.add_argument("--synthetic", type=int, help="write an N-slice series")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = args.series or synthetic_series(args.synthetic)
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        setup_django(Path(tmp) / "data", Path(tmp) / "training")
        print(json.dumps(run(folder.resolve(), args.repeats)))


if __name__ == "__main__":
    main()
