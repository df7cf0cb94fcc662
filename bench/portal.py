"""A throw-away portal for the hostile-input benches: gunicorn on a fresh PostgreSQL
database, one Celery inference worker on Redis, the shipped model active, a fresh
DATA_DIR under /tmp, DEBUG off. Everything is removed on exit (the database too)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
USERNAME, PASSWORD = "fuzz-clinician", "fuzz-pass-12345"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_memory_mb(pid: int) -> dict[int, tuple[float, float]]:
    """{pid: (resident MB now, peak resident MB)} of a process and its descendants."""
    out, todo = {}, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        hwm = float(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        out[current] = (rss, hwm)
        todo.extend(int(c) for c in children.split())
    return out


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qc", sql], check=True, capture_output=True)


class Portal:
    """``with Portal() as p:`` starts it; ``p.base``, ``p.data_dir``, ``p.shell()``."""

    def __init__(self, *, broker_db: int = 9):
        self.pid = os.getpid()
        self.db_name = f"fuzz_{self.pid}"
        self.database_url = f"postgres://postgres@127.0.0.1:5432/{self.db_name}"
        self.broker = f"redis://127.0.0.1:6379/{broker_db}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    # --- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> Portal:
        self.data_dir = Path(tempfile.mkdtemp(prefix="fuzz-portal-"))
        self.tmp_dir = self.data_dir / "tmp"
        self.tmp_dir.mkdir()
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        _psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        logs = Path(tempfile.gettempdir()) / f"fuzz-logs-{self.pid}"
        logs.mkdir(exist_ok=True)
        for log in self.data_dir.glob("*.log"):
            shutil.copy(log, logs / log.name)  # for a look after the run
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _setup(self) -> None:
        import redis

        _psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        _psql(f'CREATE DATABASE "{self.db_name}"')
        redis.Redis.from_url(self.broker).flushdb()
        self.env = self._env()
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")
        self.manage("model_ensure")  # the shipped model, copied under DATA_DIR
        self.shell(
            "from accounts.models import User; "
            f"u = User(username={USERNAME!r}, role='clinician'); "
            f"u.set_password({PASSWORD!r}); u.save()"
        )
        bin_dir = Path(sys.executable).parent
        self.web = self._start(
            [
                str(bin_dir / "gunicorn"),
                "stroke_portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "4",
                "--timeout",
                "120",
            ],
            "web.log",
        )
        self.worker = self._start(
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
            "worker.log",
        )
        self._wait_http()

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "TEST_", "CELERY_", "UPLOAD_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="stroke_portal.settings",
            DJANGO_SECRET_KEY="fuzz-" + "k" * 50,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_DEBUG="false",
            DATABASE_URL=self.database_url,
            DATA_DIR=str(self.data_dir),
            CELERY_BROKER_URL=self.broker,
            REDIS_URL="",
            LOG_LEVEL="WARNING",
            SHIPPED_MODEL_DIR=str(REPO / "models" / "ich-seg-ctich"),
            # The portal's own temporary folder, so that what it leaves there shows.
            TMPDIR=str(self.tmp_dir),
        )
        return env

    def _start(self, argv: list[str], log: str) -> subprocess.Popen:
        with open(self.data_dir / log, "w") as out:  # the child keeps its own copy
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def _wait_http(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/healthz", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError(f"{self.base} did not answer")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "--verbosity", "0", "-c", code)

    # --- clients -------------------------------------------------------------------
    def api_session(self) -> requests.Session:
        session = requests.Session()
        token = session.post(
            f"{self.base}/api/v1/auth/token/",
            data={"username": USERNAME, "password": PASSWORD},
            timeout=30,
        ).json()["token"]
        session.headers["Authorization"] = f"Token {token}"
        return session

    def web_session(self) -> requests.Session:
        """A browser-like session: logged in through the login form, with CSRF."""
        session = requests.Session()
        login = f"{self.base}/accounts/login/"
        session.get(login, timeout=30)
        response = session.post(
            login,
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": login},
            timeout=30,
        )
        response.raise_for_status()
        session.get(f"{self.base}/studies/upload/", timeout=30)
        return session

    def web_post_upload(
        self, session: requests.Session, files, *, fields=None, timeout: float = 120
    ):
        url = f"{self.base}/studies/upload/"
        return session.post(
            url,
            files=files,
            data={
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
                **(fields or {}),
            },
            headers={"Referer": url},
            timeout=timeout,
            allow_redirects=False,
        )

    def drain(self, timeout: float = 900) -> int:
        """Wait until no study is queued or processing; returns how many remain."""
        code = (
            "from diagnosis.models import Study; "
            "print(Study.objects.filter(status__in=['queued', 'processing']).count())"
        )
        deadline = time.monotonic() + timeout
        while True:
            left = int(self.shell(code).strip().splitlines()[-1])
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(2)
