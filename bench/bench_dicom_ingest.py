"""DICOM ingest through the real listener process (`manage.py dicom_listen`) on a
fresh PostgreSQL database: dcmtk's storescu sends a synthetic series as a
registered scanner, and the bench measures

- the ingest rate: slices per second over storescu's whole association;
- the latency from storescu's exit (its last instance sent and answered) to the
  study being queued for analysis, and that latency minus the quiet time;
- the listener's peak resident memory (VmHWM).

No worker runs: the study stays queued (the folder broker holds its message).

    .venv/bin/python bench/bench_dicom_ingest.py --slices 300 --size 512
    .venv/bin/python bench/bench_dicom_ingest.py --slices 30 --size 512 --quiet 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.portal import free_port, tree_memory_mb  # noqa: E402

PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qc", sql], check=True, capture_output=True)


def _env(data_dir: Path, database_url: str, quiet: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
        DJANGO_SECRET_KEY="bench-dicom-ingest-" + "k" * 40,
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        REDIS_URL="",
        CELERY_BROKER_URL="",
        DICOM_QUIET_SECONDS=str(quiet),
    )
    return env


def _manage(env, *args) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def _series(folder: Path, slices: int, size: int) -> list[Path]:
    from ml.synthetic import make_phantom, write_dicom_series

    phantom = make_phantom(label="hemorrhagic", size=size, slices=slices, seed=7)
    return write_dicom_series(phantom, folder, patient_id="BENCH-1", uid_seed="bench")


def _wait_line(process, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError("the listener stopped")
    raise RuntimeError(f"no {text!r} from the listener")


def _queued_at(database_url: str, timeout: float) -> float | None:
    """time.monotonic() when the study row (queued) first shows, polled every 20 ms."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT slice_count FROM diagnosis_study WHERE status = 'queued'"
            ).fetchone()
            if row:
                return time.monotonic()
            time.sleep(0.02)
    return None


def run(*, slices: int, size: int, quiet: float) -> dict:
    db_name = f"bench_dicom_{os.getpid()}"
    database_url = f"postgres://postgres@127.0.0.1:5432/{db_name}"
    _psql(f"CREATE DATABASE {db_name}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dicom-") as tmp:
            env = _env(Path(tmp) / "data", database_url, quiet)
            _manage(env, "migrate", "--noinput")
            _manage(
                env,
                "shell",
                "-c",
                "from dicomnode.models import DicomNode; "
                "DicomNode.objects.create(name='bench', ae_title='SCANNER1')",
            )
            files = _series(Path(tmp) / "series", slices, size)
            mb = sum(f.stat().st_size for f in files) / 1024**2
            return _measure(env, database_url, files, mb, quiet)
    finally:
        _psql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def _measure(env, database_url, files, mb, quiet) -> dict:
    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-u", "manage.py", "dicom_listen", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_line(listener, "DICOM listener")
        start = time.monotonic()
        peer = ["-aet", "SCANNER1", "-aec", "STROKEPORTAL", "127.0.0.1", str(port)]
        sent = subprocess.run(
            ["storescu", *peer, *map(str, files)],
            capture_output=True,
            text=True,
        )
        last_sent = time.monotonic()
        if sent.returncode != 0:
            raise RuntimeError(sent.stderr)
        queued = _queued_at(database_url, timeout=quiet + 120)
        peak = tree_memory_mb(listener.pid)[listener.pid][1]
    finally:
        listener.terminate()
        listener.wait(30)
    latency = None if queued is None else queued - last_sent
    return {
        "slices": len(files),
        "megabytes": round(mb, 1),
        "send_seconds": round(last_sent - start, 2),
        "slices_per_second": round(len(files) / (last_sent - start), 1),
        "megabytes_per_second": round(mb / (last_sent - start), 1),
        "quiet_seconds": quiet,
        "last_instance_to_queued_seconds": None
        if latency is None
        else round(latency, 2),
        "after_quiet_seconds": None if latency is None else round(latency - quiet, 2),
        "listener_peak_rss_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quiet", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(run(slices=args.slices, size=args.size, quiet=args.quiet)))


if __name__ == "__main__":
    main()
