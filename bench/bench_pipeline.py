"""Upload-to-ready time and studies per hour, through the real entry points.

    .venv/bin/python bench/bench_pipeline.py --model var/models/demo
        [--studies 5] [--burst 10] [--slices 30] [--size 512]
        [--database-url postgres://postgres@127.0.0.1:5432/stroke_bench_pipeline]
        [--broker redis://127.0.0.1:6379/14]

Starts gunicorn and one Celery inference worker (concurrency 1, as in
docker-compose.yml) on PostgreSQL and Redis, registers and activates the model, then
uploads synthetic 30-slice 512x512 CT series through the API as a clinician and
polls each study until it is ready:

- upload-to-ready: `--studies` uploads one after another (the worker is warm after
  the first, which is reported apart);
- throughput: `--burst` uploads at once; studies per hour = burst / time until the
  last is ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_worklist import django_env, ensure_database  # noqa: E402
from bench.portal import tree_memory_mb  # noqa: E402


def make_series(folder: Path, *, count: int, slices: int, size: int) -> list[Path]:
    from ml.synthetic import make_phantom, write_dicom_series

    folders = []
    for i in range(count):
        target = folder / f"study-{i}"
        label = ("normal", "hemorrhagic", "ischemic")[i % 3]
        write_dicom_series(
            make_phantom(label=label, size=size, slices=slices, seed=i),
            target,
            patient_id=f"BENCH-{i:04d}",
        )
        folders.append(target)
    return folders


def start(env, argv, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def manage(env, *args) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def upload(session, base: str, folder: Path) -> int:
    files = [
        ("files", (p.name, p.read_bytes(), "application/dicom"))
        for p in sorted(folder.iterdir())
    ]
    response = session.post(f"{base}/api/v1/studies/", files=files, timeout=120)
    response.raise_for_status()
    return response.json()["id"]


def wait_ready(session, base: str, study_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(f"{base}/api/v1/studies/{study_id}/", timeout=30).json()
        if body["status"] in ("ready", "failed"):
            return body
        time.sleep(0.1)
    raise RuntimeError(f"study {study_id} not ready after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="model folder to activate")
    parser.add_argument("--studies", type=int, default=5)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/stroke_bench_pipeline",
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    subprocess.run(
        [
            "psql",
            args.database_url.rsplit("/", 1)[0] + "/postgres",
            "-qc",
            f'DROP DATABASE IF EXISTS "{args.database_url.rsplit("/", 1)[1]}"',
        ],
        check=True,
        capture_output=True,
    )
    ensure_database(args.database_url)
    import redis

    redis.Redis.from_url(args.broker).flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = django_env(args.database_url, str(tmp))
        env.update(CELERY_BROKER_URL=args.broker, REDIS_URL="")
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        manage(env, "model_ensure", "--path", str(Path(args.model).resolve()))
        manage(
            env,
            "shell",
            "--verbosity",
            "0",
            "-c",
            "from accounts.models import User; u = User(username='bench-up', "
            "role='clinician'); u.set_password('bench-pass-123'); u.save()",
        )
        bin_dir = Path(sys.executable).parent
        web = start(
            env,
            [
                str(bin_dir / "gunicorn"),
                "stroke_portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{args.port}",
                "--workers",
                "2",
            ],
            tmp / "web.log",
        )
        worker = start(
            env,
            [
                str(bin_dir / "celery"),
                "-A",
                "stroke_portal",
                "worker",
                "--queues",
                "inference,default",
                "--concurrency",
                "1",
                "--prefetch-multiplier",
                "1",
                "--loglevel",
                "INFO",
            ],
            tmp / "worker.log",
        )
        try:
            base = f"http://127.0.0.1:{args.port}"
            wait_http(f"{base}/healthz")
            session = requests.Session()
            token = session.post(
                f"{base}/api/v1/auth/token/",
                data={"username": "bench-up", "password": "bench-pass-123"},
            ).json()["token"]
            session.headers["Authorization"] = f"Token {token}"
            series = make_series(
                tmp / "series",
                count=args.studies + args.burst,
                slices=args.slices,
                size=args.size,
            )
            sequential = []
            for folder in series[: args.studies]:
                start_time = time.monotonic()
                study_id = upload(session, base, folder)
                uploaded = time.monotonic()
                body = wait_ready(session, base, study_id)
                done = time.monotonic()
                assert body["status"] == "ready", body["error_message"]
                sequential.append(
                    (
                        done - start_time,
                        uploaded - start_time,
                        body["seconds_to_result"],
                    )
                )
            burst_start = time.monotonic()
            ids = [upload(session, base, folder) for folder in series[args.studies :]]
            for study_id in ids:
                wait_ready(session, base, study_id)
            burst_seconds = time.monotonic() - burst_start
            memory = tree_memory_mb(worker.pid)
            last = body
        finally:
            for process in (web, worker):
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    first, warm = sequential[0], sequential[1:] or sequential
    print(
        f"\nmodel {args.model}; {args.slices} x {args.size} x {args.size} DICOM "
        "series; gunicorn + 1 inference worker (concurrency 1), PostgreSQL, Redis\n"
    )
    print("| measure | seconds |")
    print("|---|---:|")
    print(f"| upload-to-ready, first study (worker loads the model) | {first[0]:.2f} |")
    print(
        f"| upload-to-ready, warm worker, median of {len(warm)} | "
        f"{statistics.median(w[0] for w in warm):.2f} |"
    )
    print(
        f"| of which upload request (validation, storage) | "
        f"{statistics.median(w[1] for w in warm):.2f} |"
    )
    print(
        f"| of which queue + analysis (queued_at to ready_at) | "
        f"{statistics.median(w[2] for w in warm):.2f} |"
    )
    print(
        f"\n{args.burst} studies uploaded at once: all ready after "
        f"{burst_seconds:.1f} s = {3600 * args.burst / burst_seconds:.0f} "
        "studies per hour per worker"
    )
    print("\nCelery worker memory after the runs (resident now / peak), per process:")
    for pid, (rss, hwm) in sorted(memory.items()):
        print(f"  pid {pid}: {rss:.0f} MB / {hwm:.0f} MB")
    result = last.get("result") or {}
    print(
        f"last sequential study: {result.get('finding')!r}, volume "
        f"{result.get('volume_ml')} mL, model {result.get('model_version')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
