"""Amplification of one small upload: 30 black 4096 x 4096 PNGs (about 0.5 MB).

    .venv/bin/python bench/bench_amplification.py [--count 30] [--size 4096]

Starts a throw-away portal (bench/portal.py: gunicorn, one Celery inference worker,
PostgreSQL, Redis, the shipped model), uploads the PNGs through the API as a
clinician, waits until the study is final and reports: the upload's bytes, the
request time, the worker's resident memory when idle and at its peak, the bytes
written under DATA_DIR/files, and the time from upload to the final state.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.portal import Portal, tree_memory_mb


def black_png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((size, size), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_mb(memory: dict[int, tuple[float, float]]) -> tuple[float, float]:
    """Resident now and peak of the busiest process (the worker's pool child)."""
    return max(memory.values(), key=lambda v: v[1])


def run(count: int, size: int) -> dict:
    png = black_png(size)
    files = [("files", (f"slice-{i:03d}.png", png, "image/png")) for i in range(count)]
    with Portal() as portal:
        api = portal.api_session()
        time.sleep(5)  # the worker warms the model when it starts
        idle = peak_mb(tree_memory_mb(portal.worker.pid))
        files_dir = portal.data_dir / "files"
        disk_before = folder_bytes(files_dir) if files_dir.exists() else 0
        start = time.monotonic()
        response = api.post(f"{portal.base}/api/v1/studies/", files=files, timeout=300)
        request_s = time.monotonic() - start
        body = response.json()
        result = {
            "upload_bytes": len(png) * count,
            "status": response.status_code,
            "request_seconds": round(request_s, 2),
            "answer": {k: body.get(k) for k in ("id", "detail", "warnings")},
        }
        if response.status_code == 201:
            detail = _wait_final(portal, api, body["id"])
            result.update(
                final_status=detail["status"],
                upload_to_final_seconds=round(time.monotonic() - start, 1),
                error_message=detail.get("error_message"),
                shape=portal.shell(
                    "from diagnosis.models import Study; "
                    f"s = Study.objects.get(pk={body['id']}); "
                    "print(s.slice_count, s.warnings)"
                ).strip(),
            )
        busy = peak_mb(tree_memory_mb(portal.worker.pid))
        result.update(
            worker_idle_mb=round(idle[0]),
            worker_peak_mb=round(busy[1]),
            disk_written_mb=round((folder_bytes(files_dir) - disk_before) / 1024**2, 1),
        )
    return result


def _wait_final(portal: Portal, api, study_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = f"{portal.base}/api/v1/studies/{study_id}/"
        detail = api.get(url, timeout=30).json()
        if detail["status"] in ("ready", "failed"):
            return detail
        time.sleep(0.2)
    raise RuntimeError(f"study {study_id} not final after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    print(json.dumps(run(args.count, args.size), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
