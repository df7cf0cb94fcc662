"""Time to register a training data set uploaded as a zip: the request's part (store
the zip, check its directory) and the worker's part (unpack, index, lock the split).

    .venv/bin/python bench/bench_dataset_zip.py --data ../shared/data/brain-stroke-ct

Zips the folder (deflate, as a user's zip tool would) inside one top folder, then
goes through `feedback.services.dataset_register(archive=...)` and
`dataset_index` on a throw-away SQLite database. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import zipfile
from pathlib import Path

from bench_retraining import setup_django


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return archive


def run(archive: Path) -> dict:
    from django.core.files import File

    from accounts.models import User
    from feedback import services

    admin = User.objects.create(username="bench-admin", role="admin")
    with archive.open("rb") as handle:
        started = time.perf_counter()
        dataset = services.dataset_register(
            name="bench", archive=File(handle, name=archive.name), by=admin
        )
        request_seconds = time.perf_counter() - started
    started = time.perf_counter()
    services.dataset_index(dataset_id=dataset.pk)
    worker_seconds = time.perf_counter() - started
    dataset.refresh_from_db()
    if dataset.status != "ready":
        raise SystemExit(f"indexing failed: {dataset.error_message}")
    return {
        "zip_mb": round(archive.stat().st_size / 2**20, 1),
        "images": dataset.images,
        "scans": dataset.groups,
        "locked_test_scans": len(dataset.locked_test_groups),
        "request_seconds": round(request_seconds, 2),
        "unpack_and_index_seconds": round(worker_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="class folders")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dataset-zip-") as tmp:
        tmp_path = Path(tmp)
        archive = zip_folder(args.data.resolve(), tmp_path / f"{args.data.name}.zip")
        setup_django(tmp_path / "data", tmp_path)
        print(json.dumps(run(archive)), flush=True)


if __name__ == "__main__":
    main()
