"""What `make run` starts: the web server, a Celery worker and beat, and the DICOM
listener, on SQLite and the folder broker (no server process), all stopped together
by Ctrl-C."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_env(data_dir: Path) -> dict[str, str]:
    """The environment of a newcomer's machine: nothing but a secret key. Empty
    values win over a developer's .env."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "TEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="stroke_portal.settings",
        DJANGO_SECRET_KEY="runportal-test-" + "s" * 40,
        DATA_DIR=str(data_dir),
        DATABASE_URL="",
        REDIS_URL="",
        CELERY_BROKER_URL="",
    )
    return env


def manage(env, *args):
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )


def read_until(process, pattern: str, timeout: float, seen: list[str]) -> bool:
    deadline = time.monotonic() + timeout
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            seen.append(line)
            if re.search(pattern, line):
                return True
        elif process.poll() is not None:
            return False
        else:
            time.sleep(0.1)
    return False


@pytest.fixture
def portal(tmp_path):
    env = default_env(tmp_path)
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput")
    port, dicom_port = free_port(), free_port()
    argv = [
        "scripts/runportal.py",
        "--port",
        str(port),
        "--dicom-port",
        str(dicom_port),
    ]
    process = subprocess.Popen(
        [sys.executable, "-u", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        up = read_until(process, r"Stroke portal is up", 90, seen)
        assert up, "".join(seen[-40:])
        yield {
            "process": process,
            "port": port,
            "dicom_port": dicom_port,
            "env": env,
            "seen": seen,
        }
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_portal_serves_runs_tasks_and_stops_together(portal):
    base = f"http://127.0.0.1:{portal['port']}"
    with urllib.request.urlopen(f"{base}/accounts/login/", timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
        assert "Sign in" in page
    # The stylesheet the page links: its hashed name, the only copy collected.
    css = re.search(r'href="(/static/vendor/bootstrap/bootstrap\.min\.\w+\.css)"', page)
    assert css, page[:2000]
    with urllib.request.urlopen(f"{base}{css[1]}", timeout=10) as response:
        assert response.status == 200

    # A task enqueued by another process reaches the worker through the folder broker.
    manage(
        portal["env"],
        "shell",
        "-c",
        "from accounts.tasks import sessions_clear_expired as t; t.delay()",
    )
    seen = portal["seen"]
    assert read_until(
        portal["process"], r"sessions_clear_expired.*succeeded", 60, seen
    ), "".join(seen[-40:])

    # The DICOM listener is up on its own port (it may have said so already).
    listening = rf"DICOM listener \S+ on \S+:{portal['dicom_port']}"
    assert any(re.search(listening, line) for line in seen) or read_until(
        portal["process"], listening, 30, seen
    ), "".join(seen[-40:])
    with socket.create_connection(("127.0.0.1", portal["dicom_port"]), timeout=5):
        pass

    portal["process"].send_signal(signal.SIGINT)
    assert portal["process"].wait(timeout=40) == 0
    tail = portal["process"].stdout.read() or ""
    assert "web, worker, beat and dicom stopped" in "".join(seen) + tail
    pids = [int(p) for p in re.findall(r"pid (\d+)", "".join(seen))]
    assert len(pids) == 4
    assert not [pid for pid in pids if _alive(pid)], "a child outlived Ctrl-C"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
