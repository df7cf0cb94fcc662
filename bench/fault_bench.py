"""Fault bench (issue 13): how long a study waits when its inference worker dies or
Redis restarts, with the deployed values (lease 60 s, sweep 30 s, pool alive timeout
60 s) and a real model.

    .venv/bin/python bench/fault_bench.py [--model models/ich-seg-ctich]
        [--slices 30] [--size 512] [--restart-delay 0] [--alive-timeout S]
        [--scenarios child,whole,redis] [--give-up 600]
        [--database-url postgres://postgres@127.0.0.1:5432/stroke_bench_faults]

Starts its own redis-server (a free port, nothing on disk, as the shared one: it can
restart it without touching anyone else's queues), gunicorn, an inference worker
(queue inference, concurrency 1, prefetch 1, as docker-compose.yml), a default worker
(the sweeper's queue) and beat, on PostgreSQL. Each scenario uploads a new synthetic
CT series through the API and polls the database every 0.05 s:

- baseline: upload to ready, no fault;
- child: SIGKILL of the inference worker's pool process in the middle of the study;
- whole: SIGKILL of the inference worker's main process and pool (a container dying),
  started again after --restart-delay s (docker's restart: unless-stopped);
- redis: Redis killed and started again (its data gone, as `redis-cli shutdown
  nosave`) with one study processing and one queued behind it.

For each: seconds from the fault to the study running again (claimed by a worker)
and to ready ("never" after --give-up s), and how many pool processes the inference
worker killed meanwhile for not reporting in time. `--alive-timeout 4` runs the
workers with Celery's default worker_proc_alive_timeout, as before issue 13.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_pipeline import (  # noqa: E402
    make_series,
    manage,
    start,
    upload,
    wait_http,
)
from bench.bench_worklist import django_env, ensure_database  # noqa: E402
from tests.servers import RedisServer, pool_children  # noqa: E402

POLL = 0.05


class Study:
    """Reads one study's row (the bench's own database, read only)."""

    def __init__(self, database_url: str, study_id: int):
        import psycopg

        self.connection = psycopg.connect(database_url, autocommit=True)
        self.id = study_id

    def row(self) -> dict:
        cursor = self.connection.execute(
            "SELECT status, attempts, processing_started_at, ready_at, "
            "error_message FROM diagnosis_study WHERE id = %s",
            (self.id,),
        )
        keys = ("status", "attempts", "started", "ready", "error")
        return dict(zip(keys, cursor.fetchone(), strict=True))

    def wait(self, test, timeout: float = 900) -> dict:
        """The row once `test` accepts it, or as it is after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.row()
            if test(row):
                return row
            time.sleep(POLL)
        return self.row()


POOL_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/ForkPoolWorker-"
)


def first_pool_line_after(logs: list[Path], moment: float) -> float | None:
    """Seconds from `moment` to the first line a pool process logged after it: for a
    killed pool process, its replacement's start and model load, then its first task
    (the redelivered message)."""
    for log in logs:
        for line in log.read_text().splitlines():
            match = POOL_LINE.match(line)
            if match:
                at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if at > moment:
                    return at - moment
    return None


def timed_out_pool_processes(logs: list[Path]) -> int:
    """Pool processes the inference workers killed for not reporting in time."""
    return sum(log.read_text().count("Timed out waiting for UP") for log in logs)


class Portal:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp = args, tmp
        self.redis = RedisServer(tmp)
        self.env = django_env(args.database_url, str(tmp))
        self.env.update(CELERY_BROKER_URL=self.redis.url, LOG_LEVEL="INFO")
        if args.alive_timeout is not None:
            self.env["CELERY_WORKER_PROC_ALIVE_TIMEOUT"] = str(args.alive_timeout)
        self.bin = Path(sys.executable).parent
        self.processes: dict[str, subprocess.Popen] = {}
        self.inference_logs: list[Path] = []
        self.series = iter(
            make_series(tmp / "series", count=8, slices=args.slices, size=args.size)
        )

    def celery(self, name: str, *argv: str) -> subprocess.Popen:
        log = self.tmp / f"{name}-{len(self.inference_logs)}.log"
        if name == "inference":
            self.inference_logs.append(log)
        command = [str(self.bin / "celery"), "-A", "stroke_portal", *argv]
        self.processes[name] = start(self.env, command, log)
        return self.processes[name]

    def inference(self) -> subprocess.Popen:
        return self.celery(
            "inference",
            *("worker", "--queues", "inference", "--concurrency", "1"),
            *("--prefetch-multiplier", "1", "--loglevel", "INFO"),
            *("--hostname", f"inference-{len(self.inference_logs)}@%h"),
        )

    def up(self) -> None:
        self.redis.start()
        manage(self.env, "migrate", "--noinput")
        manage(self.env, "collectstatic", "--noinput")
        manage(self.env, "model_ensure", "--path", str(Path(self.args.model).resolve()))
        manage(
            self.env,
            "shell",
            "--verbosity",
            "0",
            "-c",
            "from accounts.models import User; u = User(username='bench-up', "
            "role='clinician'); u.set_password('bench-pass-123'); u.save()",
        )
        web_argv = [str(self.bin / "gunicorn"), "stroke_portal.wsgi:application"]
        web_argv += ["--bind", f"127.0.0.1:{self.args.port}", "--workers", "2"]
        self.processes["web"] = start(self.env, web_argv, self.tmp / "web.log")
        self.inference()
        self.celery("default", "worker", "--queues", "default", "--concurrency", "1")
        self.celery("beat", "beat", "--loglevel", "INFO")
        self.base = f"http://127.0.0.1:{self.args.port}"
        wait_http(f"{self.base}/healthz")
        self.session = requests.Session()
        token = self.session.post(
            f"{self.base}/api/v1/auth/token/",
            data={"username": "bench-up", "password": "bench-pass-123"},
        ).json()["token"]
        self.session.headers["Authorization"] = f"Token {token}"

    def upload(self) -> Study:
        study_id = upload(self.session, self.base, next(self.series))
        return Study(self.args.database_url, study_id)

    def down(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.redis.stop()


def processing(row) -> bool:
    return row["status"] == "processing"


def done(row) -> bool:
    return row["status"] in ("ready", "failed")


def measure(study: Study, fault_at: float, attempts_before: int, give_up) -> dict:
    """Seconds from the fault (time.time()) to the study claimed again and ready;
    "again" is "-" for a study its worker finished despite the fault."""
    final = study.wait(done, give_up)
    if final["attempts"] > attempts_before:
        again = final["started"].timestamp() - fault_at
    else:
        again = "-" if final["ready"] else None
    return {
        "again": again,
        "ready": final["ready"].timestamp() - fault_at if final["ready"] else None,
        "status": final["status"],
        "attempts": final["attempts"],
        "error": final["error"],
    }


def kill_mid_study(portal: Portal, *, whole: bool) -> dict:
    study = portal.upload()
    row = study.wait(processing)
    time.sleep(0.5)  # the model is running
    worker = portal.processes["inference"]
    before = timed_out_pool_processes(portal.inference_logs)
    fault_at = time.time()
    if whole:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        time.sleep(portal.args.restart_delay)
        portal.inference()
    else:
        children = pool_children(worker.pid)
        for child in children:
            os.kill(child, signal.SIGKILL)
    if study.row()["status"] == "ready" and study.row()["attempts"] == 1:
        raise RuntimeError("the study was ready before the kill: use more slices")
    result = measure(study, fault_at, row["attempts"], portal.args.give_up)
    result["timed_out_children"] = (
        timed_out_pool_processes(portal.inference_logs) - before
    )
    if not whole:
        result["replacement"] = first_pool_line_after(portal.inference_logs, fault_at)
    return result


def redis_restart(portal: Portal) -> dict:
    first = portal.upload()
    row = first.wait(processing)
    queued = portal.upload()
    assert queued.row()["status"] == "queued"
    fault_at = time.time()
    portal.redis.restart()
    result = measure(queued, fault_at, 0, portal.args.give_up)
    result["first"] = measure(first, fault_at, row["attempts"], portal.args.give_up)
    return result


def wait_log(log: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log.name} never said {text!r}")
        time.sleep(0.2)


def baseline(portal: Portal) -> dict:
    wait_log(portal.inference_logs[-1], " ready.")
    time.sleep(15)  # the pool process loads the model after the worker is ready
    study = portal.upload()
    start_at = time.time()
    final = study.wait(done)
    return {"ready": final["ready"].timestamp() - start_at, "status": final["status"]}


def seconds(value) -> str:
    if isinstance(value, str):
        return value
    return "never" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(REPO / "models" / "ich-seg-ctich"))
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--restart-delay", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--alive-timeout", type=float, default=None)
    parser.add_argument("--scenarios", default="child,whole,redis")
    parser.add_argument("--give-up", type=float, default=600)
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/stroke_bench_faults",
    )
    args = parser.parse_args()
    name = args.database_url.rsplit("/", 1)[1]
    subprocess.run(
        [
            "psql",
            args.database_url.rsplit("/", 1)[0] + "/postgres",
            "-qc",
            f'DROP DATABASE IF EXISTS "{name}"',
        ],
        check=True,
        capture_output=True,
    )
    ensure_database(args.database_url)
    with tempfile.TemporaryDirectory() as tmp:
        portal = Portal(args, Path(tmp))
        try:
            portal.up()
            scenarios = {
                "child": lambda: kill_mid_study(portal, whole=False),
                "whole": lambda: kill_mid_study(portal, whole=True),
                "redis": lambda: redis_restart(portal),
            }
            results = {"baseline": baseline(portal)}
            for name in args.scenarios.split(","):
                results[name] = scenarios[name]()
        finally:
            portal.down()
    print(
        f"\nmodel {args.model}; {args.slices} x {args.size} x {args.size} DICOM "
        "series; 1 inference worker (concurrency 1), 1 default worker, beat, "
        "PostgreSQL, Redis (nothing on disk)\n"
    )
    print("| fault | to running again (s) | to ready (s) | status | attempts |")
    print("|---|---:|---:|---|---:|")
    base = results["baseline"]
    print(
        f"| none: upload to ready | | {seconds(base['ready'])} | {base['status']} | 1 |"
    )
    labels = {
        "child": "SIGKILL of the pool process mid-study",
        "whole": "SIGKILL of the whole worker, started again",
        "redis": "Redis restarted: the queued study",
    }
    rows = [(labels[name], results[name]) for name in labels if name in results]
    if "redis" in results:
        rows.append(
            ("Redis restarted: the study that was running", results["redis"]["first"])
        )
    for label, r in rows:
        print(
            f"| {label} | {seconds(r['again'])} | {seconds(r['ready'])} | "
            f"{r['status']} | {r['attempts']} |"
        )
    if "child" in results:
        replacement = results["child"]["replacement"]
        when = (
            "left no line in the worker's log"
            if replacement is None
            else f"ran its first task {replacement:.1f} s after the kill"
        )
        print(f"\nchild: the replacement pool process (fork, model load) {when}")
    timed_out = {
        n: results[n]["timed_out_children"] for n in ("child", "whole") if n in results
    }
    alive = args.alive_timeout if args.alive_timeout is not None else "default (60)"
    print(
        f"\nworker_proc_alive_timeout {alive} s; pool processes killed for not "
        f"reporting in time: {timed_out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
