"""Worklist page and study API under load, with 10,000 studies in PostgreSQL.

    .venv/bin/python bench/bench_worklist.py [--studies 10000] [--clients 20]
        [--seconds 20] [--workers 3] [--threads 1]
        [--database-url postgres://postgres@127.0.0.1:5432/stroke_bench]

Creates (or reuses) the benchmark database, seeds studies with AI results, analyzes
it, starts gunicorn on loopback and drives it with wrk (Debian package `wrk`) as a
signed-in radiologist, after a short warm-up per endpoint. Prints a Markdown table
for the worklist page, its 40th page, the AI-stroke filter, the study API list and one
study's API detail: requests/s, p50/p95/p99 latency, errors, CPU per request of
gunicorn and of PostgreSQL, and how many cores were busy (and how much of that was
other programs: on a shared machine, latency is only comparable between quiet runs).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f\\n",
    summary.requests, summary.errors.status + summary.errors.connect
      + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""


def django_env(database_url: str, data_dir: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
        DJANGO_SECRET_KEY="bench-" + "k" * 50,
        DATABASE_URL=database_url,
        DATA_DIR=data_dir,
        REDIS_URL="",
        LOG_LEVEL="WARNING",
        # Connections (and their PostgreSQL backends) live through the whole run, so
        # that the backends' CPU time can be read at its end.
        DB_CONN_MAX_AGE="3600",
    )
    return env


def ensure_database(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    exists = subprocess.run(
        ["psql", admin, "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{name}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            ["psql", admin, "-c", f'CREATE DATABASE "{name}"'],
            check=True,
            capture_output=True,
        )


SEED = """
import os, random
from datetime import timedelta
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from accounts.models import User
from diagnosis.models import AIResult, Study, worklist_bucket
from feedback.models import ModelVersion

n = int(os.environ["BENCH_STUDIES"])
rng = random.Random(0)
clinician, _ = User.objects.get_or_create(username="bench-clinician",
                                          defaults={"role": "clinician"})
radiologist, _ = User.objects.get_or_create(username="bench-radiologist",
                                            defaults={"role": "radiologist"})
model, _ = ModelVersion.objects.get_or_create(
    sha256="b" * 64, defaults=dict(name="bench", version="1", architecture="custom_cnn",
    task="binary", classes=["normal", "stroke"], path="/none", status="active"))
have = Study.objects.count()
now = timezone.now()
batch = []
for i in range(have, n):
    p = rng.random()
    label = "stroke" if p > 0.5 else "normal"
    status = rng.choice(["ready"] * 8 + ["queued", "failed"])
    reviewed = status == "ready" and rng.random() < 0.5
    ready = status == "ready"
    batch.append(Study(uploaded_by=clinician, status=status,
        bucket=worklist_bucket(status=status, reviewed=reviewed), reviewed=reviewed,
        ai_label=label if ready else "", ai_confidence=max(p, 1 - p) if ready else None,
        content_hash=f"{i:064d}", source_kind="dicom", units="HU", modality="CT",
        slice_count=30, patient_id=f"MRN{i:07d}",
        priority=(1 + p) if label == "stroke" else p,
        queued_at=now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))))
    if len(batch) == 1000 or i == n - 1:
        studies = Study.objects.bulk_create(batch)
        AIResult.objects.bulk_create(AIResult(study=s, model_version=model,
            label=s.ai_label, probability=s.priority % 1,
            confidence=0.8, threshold=0.5) for s in studies if s.status == "ready")
        batch = []
session = SessionStore()
session["_auth_user_id"] = str(radiologist.pk)
session["_auth_user_backend"] = "django.contrib.auth.backends.AllowAllUsersModelBackend"
session["_auth_user_hash"] = radiologist.get_session_auth_hash()
session.create()
print("SESSION", session.session_key, Study.objects.order_by("pk").first().pk)
"""


def seed(env: dict[str, str], studies: int, database_url: str) -> tuple[str, int]:
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [python, "manage.py", "shell", "--verbosity", "0", "-c", SEED],
        cwd=REPO,
        env={**env, "BENCH_STUDIES": str(studies)},
        check=True,
        capture_output=True,
        text=True,
    )
    # Fresh planner statistics, as autovacuum would have them on a live database (it
    # may be off, or not have run yet after the bulk insert): without them the planner
    # guesses ~1,200 studies and sorts the whole table for a deep page.
    subprocess.run(
        ["psql", database_url, "-c", "ANALYZE"], check=True, capture_output=True
    )
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("SESSION"))
    _, key, first = line.split()
    return key, int(first)


def start_server(
    env: dict[str, str], port: int, workers: int, threads: int
) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            str(bin_dir / "gunicorn"),
            "stroke_portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def cpu_snapshot(server_pid: int, database: str) -> dict:
    """CPU seconds so far, per process, of gunicorn (master and workers) and of the
    PostgreSQL backends serving `database`; the whole machine's busy time; and this
    script's finished children (wrk)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            name, fields = rest.rsplit(")", 1)
            fields = fields.split()  # [1] parent, [11] user and [12] system time
            if server_pid in (int(pid), int(fields[1])):
                kind = "gunicorn"
            elif name == "(postgres":
                # A backend's title reads "postgres: <user> <database> <client> ...".
                title = (stat.parent / "cmdline").read_bytes().split(b" ")
                if database.encode() not in title:
                    continue
                kind = "postgres"
            else:
                continue
        except OSError:  # the process ended meanwhile
            continue
        procs[int(pid)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    busy = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "procs": procs,
        "machine": sum(int(busy[i]) for i in (0, 1, 2, 5, 6, 7)) / tick,
        "wrk": children.ru_utime + children.ru_stime,
    }


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds between two snapshots; a process that ended in between is left
    out, and what no process of ours used counts as other programs'."""
    used = {"gunicorn": 0.0, "postgres": 0.0}
    for pid, (kind, seconds) in after["procs"].items():
        used[kind] += seconds - before["procs"].get(pid, (kind, 0.0))[1]
    used["wrk"] = after["wrk"] - before["wrk"]
    used["machine"] = after["machine"] - before["machine"]
    used["others"] = used["machine"] - used["gunicorn"] - used["postgres"] - used["wrk"]
    return used


def run_wrk(url: str, cookie: str, clients: int, seconds: int, script: Path) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            "-H",
            f"Cookie: sessionid={cookie}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = next(ln for ln in out.splitlines() if ln.startswith("RESULT")).split()[1:]
    requests, errors, duration_us = (int(f) for f in fields[:3])
    p50, p95, p99 = (float(f) for f in fields[3:])
    return {
        "rps": requests / (duration_us / 1e6),
        "errors": errors,
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "requests": requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--port", type=int, default=8790)
    # docker-compose.yml's web service: 3 sync workers.
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3, help="seconds per endpoint")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/stroke_bench"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt install wrk", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    ensure_database(args.database_url)
    database = args.database_url.rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory() as data_dir:
        env = django_env(args.database_url, data_dir)
        cookie, first = seed(env, args.studies, args.database_url)
        server = start_server(env, args.port, args.workers, args.threads)
        script = Path(data_dir) / "report.lua"
        script.write_text(WRK_SCRIPT)
        base = f"http://127.0.0.1:{args.port}"
        targets = {
            "worklist page 1": f"{base}/studies/",
            "worklist page 40": f"{base}/studies/?page=40",
            "worklist, AI stroke only": f"{base}/studies/?ai_label=stroke",
            "API study list": f"{base}/api/v1/studies/",
            "API study detail": f"{base}/api/v1/studies/{first + 7}/",
        }
        rows = {}
        try:
            for name, url in targets.items():
                # First requests per worker compile templates and open connections.
                run_wrk(url, cookie, args.clients, args.warmup, script)
                before = cpu_snapshot(server.pid, database)
                r = run_wrk(url, cookie, args.clients, args.seconds, script)
                used = cpu_used(before, cpu_snapshot(server.pid, database))
                r["gunicorn_ms"] = 1000 * used["gunicorn"] / max(r["requests"], 1)
                r["postgres_ms"] = 1000 * used["postgres"] / max(r["requests"], 1)
                r["busy"] = used["machine"] / args.seconds
                r["others"] = max(used["others"], 0) / args.seconds
                rows[name] = r
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(
        f"\n{args.studies} studies in PostgreSQL, {args.clients} concurrent clients, "
        f"{args.seconds} s each, gunicorn {args.workers} workers x {args.threads} "
        f"threads, wrk on loopback, {os.cpu_count()} CPUs; load average "
        f"{load_before:.1f} before the run\n"
    )
    print(
        "| endpoint | requests/s | p50 ms | p95 ms | p99 ms | errors "
        "| CPU ms/request gunicorn + PostgreSQL | cores busy (other programs) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | "
            f"{r['p99']:.0f} | {r['errors']} | "
            f"{r['gunicorn_ms']:.1f} + {r['postgres_ms']:.1f} | "
            f"{r['busy']:.2f} ({r['others']:.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
